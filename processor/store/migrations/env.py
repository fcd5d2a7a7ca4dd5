from alembic import context

from processor.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        from sqlalchemy import create_engine

        engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # Take the write lock before reading the schema version, so two
            # processes starting at once migrate one after the other.
            connection = connection.execution_options(sqlite_immediate=True)
        # DDL in one transaction on both backends: a crash mid-migration
        # leaves the previous schema, never half of the new one.
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=connection.dialect.name == "sqlite", transactional_ddl=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
