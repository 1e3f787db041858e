/**
 * Renders the benchmark rows as one Markdown table (pasteable into the README) and as JSON.
 *
 * @module
 */
import type { Row } from "./section.ts";

/** Formats a number for reading: about three significant digits, no exponent. */
function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const magnitude = Math.abs(value);
  if (magnitude >= 100) return Math.round(value).toLocaleString("en-US");
  if (magnitude >= 10) return value.toFixed(1);
  if (magnitude >= 1) return value.toFixed(2);
  return value.toFixed(3);
}

function withUnit(value: number, unit: string): string {
  return `${formatNumber(value)} ${unit}`;
}

function cells(row: Row, footnote: string): string[] {
  const ref = row.reference;
  return [
    row.section,
    row.metric + footnote,
    withUnit(row.value, row.unit),
    ref ? `${ref.label}: ${withUnit(ref.value, ref.unit ?? row.unit)}` : "",
    row.ratio === undefined ? "" : `${row.ratio.toFixed(2)}x`,
    row.goal ?? "",
  ];
}

const HEADER = ["benchmark", "metric", "cln-backup", "measured reference", "ratio", "goal"];
/** Columns that hold numbers, right-aligned. */
const NUMERIC = new Set([2, 4]);

/** The rows as an aligned Markdown table, with the rows' notes as numbered footnotes. */
export function renderTable(rows: readonly Row[]): string {
  const notes: string[] = [];
  const body = rows.map((row) => {
    if (!row.note) return cells(row, "");
    notes.push(row.note);
    return cells(row, ` [${notes.length}]`);
  });
  const widths = HEADER.map((h, i) =>
    Math.max(h.length, ...body.map((cellsOf) => cellsOf[i].length))
  );
  const line = (values: string[]) =>
    "| " +
    values.map((v, i) => NUMERIC.has(i) ? v.padStart(widths[i]) : v.padEnd(widths[i])).join(
      " | ",
    ) + " |";
  const rule = "|" +
    widths.map((w, i) => NUMERIC.has(i) ? `${"-".repeat(w + 1)}:` : "-".repeat(w + 2))
      .join("|") +
    "|";
  const lines = [line(HEADER), rule, ...body.map(line)];
  if (notes.length > 0) {
    lines.push("");
    notes.forEach((note, i) => lines.push(`[${i + 1}] ${note}`));
  }
  return lines.join("\n");
}
