import { assertMatch, assertThrows } from "../../tests/support/assert.ts";
import { openBackend } from "./open.ts";

Deno.test("openBackend: the command it advises for a remote URL runs as pasted, the URL one shell word", () => {
  const url = "s3://bucket/node?endpoint=http://127.0.0.1:9000&path-style=1";
  const error = assertThrows(() => openBackend(url));
  // Unquoted, a shell runs "status s3://…?endpoint=…" in the background, then "path-style=1".
  assertMatch(
    (error as Error).message,
    /check it with "cln-backup status 's3:\/\/bucket\/node\?endpoint=http:\/\/127\.0\.0\.1:9000&path-style=1'"$/,
  );
});
