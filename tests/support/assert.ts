/**
 * The few assertions the tests use (jsr:@std/assert is out of reach on these machines).
 *
 * @module
 */
import { deepStrictEqual, match, ok } from "node:assert";

export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  deepStrictEqual(actual, expected, message);
}

export function assert(condition: unknown, message?: string): asserts condition {
  ok(condition, message);
}

export function assertMatch(actual: string, expected: RegExp, message?: string): void {
  match(actual, expected, message);
}

/** Runs `fn` and returns the error it throws; fails when it does not throw. */
export async function assertRejects(
  fn: () => unknown | Promise<unknown>,
  pattern?: RegExp,
): Promise<Error> {
  try {
    await fn();
  } catch (error) {
    if (pattern) match((error as Error).message, pattern);
    return error as Error;
  }
  throw new Error("expected an error, none was thrown");
}

/** Runs `fn` and returns the error it throws; fails when it does not throw. */
export function assertThrows(fn: () => unknown, pattern?: RegExp): Error {
  try {
    fn();
  } catch (error) {
    if (pattern) match((error as Error).message, pattern);
    return error as Error;
  }
  throw new Error("expected an error, none was thrown");
}
