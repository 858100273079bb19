// The short preview of a message body shown in conversation lists.

/**
 * One segmenter for the process: constructing it loads ICU data and is far
 * more expensive than using it. Grapheme rules do not depend on the locale.
 */
const graphemes = new Intl.Segmenter(undefined, { granularity: "grapheme" });

/** Any run of whitespace, including newlines, tabs and Unicode spaces. */
const WHITESPACE_RUN = /\s+/gu;

/**
 * Builds a one-line preview of at most `length` user-perceived characters,
 * cutting on grapheme clusters so an emoji with a skin tone, a family emoji,
 * a flag or a letter with combining accents is never split into mojibake.
 * A body that already fits in `length` UTF-16 units cannot hold more
 * graphemes than that, so it is returned without segmenting.
 */
export function snippet(body: string, length: number): string {
  if (!Number.isInteger(length) || length < 1) {
    throw new RangeError(`snippet length must be a positive integer, got ${length}`);
  }
  const flat = body.trim().replace(WHITESPACE_RUN, " ");
  if (flat.length <= length) return flat;
  let count = 0;
  for (const { index } of graphemes.segment(flat)) {
    if (count === length) return flat.slice(0, index);
    count++;
  }
  return flat;
}

/**
 * RFC 5322's recommended header line length: a default email subject (a snippet this long) shows whole in a
 * mail client's list.
 */
export const SUBJECT_LENGTH = 78;
