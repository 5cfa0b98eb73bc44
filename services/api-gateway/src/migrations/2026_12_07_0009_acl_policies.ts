import { sql, type Kysely } from '@switchyard/db';

// Frozen once shipped. One row per tenant that has or had an ACL policy. A delete keeps the
// row with its source and document null and the version raised, so versions only grow:
// enforcers keep the highest version they have seen and ignore anything older, a put after a
// delete included.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('acl_policies')
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().primaryKey())
    .addColumn('version', 'integer', (c) => c.notNull().check(sql`version >= 1`))
    // The text as the tenant put it (HuJSON, comments kept), and the document parsed from it.
    .addColumn('source', 'text')
    .addColumn('document', 'jsonb')
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addCheckConstraint('acl_policies_source_document', sql`(source is null) = (document is null)`)
    .execute();
}
