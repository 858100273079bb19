/**
 * SQL fragments for list endpoints that let PostgreSQL build the JSON page itself: one text column instead
 * of per-column decoding, Date objects and ORM mapping in the process (which was most of the CPU of a
 * 50-item page). The timestamp format must equal `formatTimestamp` (src/domain/timestamp.ts); test/modules/messages/item-shapes.test.ts holds the list and single-message shapes together.
 */
export const rfc3339Utc = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/**
 * A timestamp as a page cursor carries it (http/page-cursor.ts): UTC at PostgreSQL's full microsecond
 * precision, so `(column, id) > ($at::text::timestamptz, $id::text::bigint)` resumes exactly after the row,
 * even among rows of one millisecond. The parameters are declared `text` and cast in SQL: a parameter typed
 * timestamptz would be sent through the driver's date serializer (postgres.js: `new Date(x).toISOString()`,
 * milliseconds) unless something had replaced it, and bigint ids beyond 2^53 must not pass through numbers.
 */
export const cursorTimestamp = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
