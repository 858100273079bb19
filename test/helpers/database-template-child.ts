// A second test process for database.test.ts: reads a migration list on stdin, asks for a migrated copy of it and
// prints the copy's name and its template's build time. Not a test file itself.
import postgres from "postgres";
import type { Migration } from "../../src/db/migrate.ts";
import { createMigratedTestDatabase, migratedTemplateName, TEST_DATABASE_URL } from "./database.ts";

const list = JSON.parse(await new Response(Bun.stdin.stream()).text()) as Migration[];
const copy = await createMigratedTestDatabase(list);
const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
const [row] = await admin<{ built: string }[]>`
  select shobj_description(oid, 'pg_database') as built from pg_database where datname = ${migratedTemplateName(list)}`;
await admin.end();
console.log(JSON.stringify({ name: copy.name, built: row?.built }));
