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
        # On SQLite every transaction takes the write lock up front (see
        # store/db.py), so two processes starting at once migrate in turn.
        # DDL in one transaction on both backends: a crash mid-migration
        # leaves the previous schema, never half of the new one.
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=connection.dialect.name == "sqlite", transactional_ddl=True)
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Several workers starting at once: one migrates, the others
                # wait here and then find the schema current (per schema).
                connection.exec_driver_sql(
                    "SELECT pg_advisory_xact_lock(hashtext('ticket-processor migrate ' || current_schema()))")
            context.run_migrations()
        connection.commit()


run_migrations_online()
