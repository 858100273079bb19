/**
 * PostgreSQL array literals passed as one text parameter (`{"a","b\"c"}`): neither driver binds a JavaScript
 * array to a prepared `text[]` parameter on its own, and `unnest` over such arrays lets one statement carry a
 * whole batch of rows.
 */

const quoted = (v: string) => `"${v.replace(/[\\"]/g, "\\$&")}"`;

/** Whether a value can stand between double quotes as it is (no quote or backslash to escape). */
const plain = (v: string) => !v.includes('"') && !v.includes("\\");

/**
 * An array literal of text values. Values with nothing to escape (ids, timestamps, names: nearly all of a batch)
 * are joined in one go; the per-value escape cost about as much as the rest of a result write's JavaScript.
 */
export function textArray(values: readonly string[]): string {
  if (values.length === 0) return "{}";
  return values.every(plain) ? `{"${values.join('","')}"}` : `{${values.map(quoted).join(",")}}`;
}

const absent = (v: string | null | undefined): v is null | undefined => v == null;
const present = (v: string | null | undefined): v is string => v != null;

/** An array literal in which `null` and `undefined` are SQL NULLs. A column of a batch is often all one or the other. */
export function nullableTextArray(values: readonly (string | null | undefined)[]): string {
  if (values.every(absent)) return values.length === 0 ? "{}" : `{${"NULL,".repeat(values.length - 1)}NULL}`;
  if (values.every(present)) return textArray(values);
  return `{${values.map((v) => (v == null ? "NULL" : quoted(v))).join(",")}}`;
}
