import assert from "node:assert/strict";

/**
 * Asserts two console transcripts are equal; the message names the first
 * line that differs, and the runner's diff shows the rest.
 */
export function assertSameOutput(
  actual: string,
  expected: string,
  actualName: string,
  expectedName: string,
): void {
  if (actual === expected) return;
  const a = actual.split("\n");
  const b = expected.split("\n");
  let line = 0;
  while (line < a.length && line < b.length && a[line] === b[line]) line++;
  const show = (lines: string[]) =>
    line < lines.length ? JSON.stringify(lines[line]) : "(end of output)";
  const width = Math.max(actualName.length, expectedName.length);
  throw new assert.AssertionError({
    actual,
    expected,
    operator: "strictEqual",
    message:
      `outputs differ from line ${line + 1}:\n` +
      `  ${actualName.padEnd(width)}: ${show(a)}\n` +
      `  ${expectedName.padEnd(width)}: ${show(b)}`,
  });
}
