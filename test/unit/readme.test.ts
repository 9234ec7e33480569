import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SETTINGS } from '../../src/config/settings';

const readme = readFileSync(path.resolve(__dirname, '../../README.md'), 'utf8');

/** The lines of one `## ` section of the README. */
function section(title: string): string[] {
  const start = readme.indexOf(`\n## ${title}\n`);
  expect(start, `no "## ${title}" section`).toBeGreaterThan(0);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start + 1, end < 0 ? undefined : end).split('\n');
}

describe('the README\'s Configuration section', () => {
  it('is one unbroken table (a blank line would end it, and Markdown would show the rest as text)', () => {
    const lines = section('Configuration');
    const first = lines.findIndex((l) => l.startsWith('| setting |'));
    const last = lines.map((l) => l.startsWith('| ')).lastIndexOf(true);
    expect(first).toBeGreaterThan(0);
    expect(lines[first + 1]).toBe('|---|---|');
    for (const line of lines.slice(first, last + 1)) expect(line, "a line inside the table that is not a row").toMatch(/^\|.*\|$/);
  });

  it('has a row naming every setting the gateway reads', () => {
    const rows = section('Configuration').filter((l) => l.startsWith('| `'));
    const named = rows.map((r) => r.split(' | ')[0]).join(' ');
    for (const s of SETTINGS) expect(named, `${s.name} has no row`).toContain(`\`${s.name}\``);
  });
});
