/**
 * PostgreSQL array literals passed as one text parameter (`{"a","b\"c"}`): neither driver binds a JavaScript
 * array to a prepared `text[]` parameter on its own, and `unnest` over such arrays lets one statement carry a
 * whole batch of rows.
 */

const quoted = (v: string) => `"${v.replace(/[\\"]/g, "\\$&")}"`;

/** An array literal of text values. */
export function textArray(values: readonly string[]): string {
  return `{${values.map(quoted).join(",")}}`;
}

/** An array literal in which `null` and `undefined` are SQL NULLs. */
export function nullableTextArray(values: readonly (string | null | undefined)[]): string {
  return `{${values.map((v) => (v == null ? "NULL" : quoted(v))).join(",")}}`;
}
