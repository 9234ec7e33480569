/** @module Which known field a misspelt one most likely meant: named back in place of what was written, which may be a secret. */

/**
 * The known field `written` most likely meant: one that differs only in case,
 * or by at most two letters inserted, dropped, changed or swapped
 * (Damerau-Levenshtein, optimal string alignment). Of equally close ones,
 * the one with the same letters (a swap) wins; undefined when none is that
 * close, or the closest cannot be told apart.
 */
export function likelyMeant(written: string, known: Iterable<string>): string | undefined {
  const lower = written.toLowerCase();
  let closest: string[] = [];
  let closestDistance = MAX_DISTANCE + 1;
  for (const field of known) {
    const d = distance(lower, field.toLowerCase(), closestDistance + 1);
    if (d < closestDistance) {
      closest = [field];
      closestDistance = d;
    } else if (d === closestDistance && d <= MAX_DISTANCE) {
      closest.push(field);
    }
  }
  if (closest.length <= 1) return closest[0];
  const sameLetters = closest.filter((field) => letters(field) === letters(written));
  return sameLetters.length === 1 ? sameLetters[0] : undefined;
}

const MAX_DISTANCE = 2;

function letters(word: string): string {
  return [...word.toLowerCase()].sort().join('');
}

/** Edit distance with adjacent swaps when under `cap`; `cap` when it is at least that. */
function distance(a: string, b: string, cap: number): number {
  if (Math.abs(a.length - b.length) >= cap) return cap;
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) rows.push([i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 0; j <= b.length; j++) rows[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2][j - 2] + 1);
      rows[i][j] = d;
    }
  }
  return Math.min(rows[a.length][b.length], cap);
}

/** The end of a problem about an unknown field: the known one it looks like, if any, and never the field as written. */
export function meantClause(written: readonly string[], known: Iterable<string>): string {
  const guesses = [...new Set(written.map((w) => likelyMeant(w, known)).filter((g): g is string => g !== undefined))];
  if (guesses.length === 0) return '';
  return ` It looks like a misspelling of ${guesses.map((g) => `"${g}"`).join(' and ')}.`;
}
