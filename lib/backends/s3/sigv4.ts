/**
 * AWS Signature Version 4 for S3 requests (the `Authorization` header), with the body's
 * SHA-256 signed in. Written here rather than taken from npm so that the plugin and the CLI
 * load no package at run time: a node's plugin starts offline, and `backup-cli` runs with
 * no Deno cache of its own.
 *
 * @module
 */
import { createHash, createHmac } from "node:crypto";

export interface SigningKeys {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/** RFC 3986 percent-encoding, as SigV4 wants it (everything but `A-Za-z0-9-._~`). */
export function uriEncode(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

function hmac(key: string | Uint8Array, data: string): Uint8Array {
  return createHmac("sha256", key).update(data).digest();
}

/**
 * The headers to send with a request to `url`: `host`, `x-amz-date`,
 * `x-amz-content-sha256`, the session token when there is one, and `authorization`, which
 * signs them and every header in `headers`.
 */
export function signRequest(options: {
  method: string;
  url: URL;
  headers: Record<string, string>;
  payloadSha256: string;
  keys: SigningKeys;
  region: string;
  now?: Date;
}): Record<string, string> {
  const { method, url, keys, region } = options;
  const amzDate = (options.now ?? new Date()).toISOString().replace(/[-:]/g, "").replace(
    /\.\d{3}/,
    "",
  );
  const day = amzDate.slice(0, 8);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(options.headers)) {
    headers[name.toLowerCase()] = value.trim();
  }
  headers["host"] = url.host;
  headers["x-amz-date"] = amzDate;
  headers["x-amz-content-sha256"] = options.payloadSha256;
  if (keys.sessionToken) headers["x-amz-security-token"] = keys.sessionToken;
  const names = Object.keys(headers).sort();
  const path = url.pathname.split("/").map((part) => uriEncode(decodeURIComponent(part)))
    .join("/");
  const query = [...url.searchParams].map(([k, v]) => [uriEncode(k), uriEncode(v)])
    .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`).join("&");
  const canonical = [
    method,
    path,
    query,
    ...names.map((name) => `${name}:${headers[name]}`),
    "",
    names.join(";"),
    options.payloadSha256,
  ].join("\n");
  const scope = `${day}/${region}/s3/aws4_request`;
  const toSign = [
    "AWS4-HMAC-SHA256",
    amzDate,
    scope,
    createHash("sha256").update(canonical).digest("hex"),
  ].join("\n");
  let key = hmac(`AWS4${keys.secretAccessKey}`, day);
  for (const part of [region, "s3", "aws4_request"]) key = hmac(key, part);
  const signature = createHmac("sha256", key).update(toSign).digest("hex");
  delete headers["host"];
  headers["authorization"] = `AWS4-HMAC-SHA256 Credential=${keys.accessKeyId}/${scope}, ` +
    `SignedHeaders=${names.join(";")}, Signature=${signature}`;
  return headers;
}
