/**
 * SQL fragments for list endpoints that let PostgreSQL build the JSON page itself: one text column instead
 * of per-column decoding, Date objects and ORM mapping in the process (which was most of the CPU of a
 * 50-item page). The timestamp format must equal `formatTimestamp` (src/domain/timestamp.ts); test/modules/messages/item-shapes.test.ts holds the list and single-message shapes together.
 */
export const rfc3339Utc = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
