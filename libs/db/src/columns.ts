import type { ColumnType } from 'kysely';

export type { ColumnType, Generated, Insertable, Selectable } from 'kysely';

/** Set by the database on insert (`default now()`), never updated. */
export type CreatedAt = ColumnType<Date, Date | undefined, never>;
/** Defaults to now() on insert; every update sets it. */
export type UpdatedAt = ColumnType<Date, Date | undefined, Date>;
/** pg parses jsonb on read; writes go in as JSON text so arrays are not mistaken for pg arrays. */
export type Json<T> = ColumnType<T, string, string>;
