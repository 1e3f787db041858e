/**
 * Applies backed-up changes to a SQLite database as lightningd did: foreign keys on, each
 * change's statements in order, and a change of only PRAGMA statements (the migrations
 * that rebuild a table) outside any transaction, where a PRAGMA takes effect.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import { repairStatement } from "./statement_repair.ts";

const PRAGMA = /^\s*PRAGMA\s/i;

/** True for a change that only sets connection PRAGMAs. */
export function isPragmaOnly(statements: readonly string[]): boolean {
  return statements.length > 0 && statements.every((s) => PRAGMA.test(s));
}

/** Runs one statement, naming the change when it fails. */
export function execStatement(db: DatabaseSync, statement: string, version: number): void {
  try {
    db.exec(repairStatement(statement));
  } catch (error) {
    const shown = statement.length > 120 ? `${statement.slice(0, 120)}...` : statement;
    throw new Error(
      `Cannot apply change ${version}: ${(error as Error).message} in: ${shown}`,
    );
  }
}
