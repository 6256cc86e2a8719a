export * from './database.service';
export { sql } from 'kysely';
export type { Kysely, Migration, Generated, Selectable, Insertable, Transaction } from 'kysely';
