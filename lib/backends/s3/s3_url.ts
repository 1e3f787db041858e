/**
 * `s3://bucket/prefix?endpoint=…&region=…&path-style=1&ca=…`: a backup in an S3 bucket (Amazon
 * S3 by default, or any S3-compatible store given its endpoint, whose certificate may chain to
 * a CA of the operator's own, named by `ca`).
 *
 * @module
 */

export interface S3Url {
  /** Always `s3`. */
  scheme: "s3";
  /** The bucket's name. */
  bucket: string;
  /** Key prefix of every object of the backup: `""`, or ends with `/`. */
  prefix: string;
  /** `http(s)://host[:port]` of the S3 API, without a path. */
  endpoint: string;
  /** The region requests are signed for (`us-east-1` unless the URL names one). */
  region: string;
  /** Bucket in the path (`endpoint/bucket/key`) rather than the host name. */
  pathStyle: boolean;
  /** A PEM file of CA certificates the https endpoint's chains to, besides the public ones. */
  ca?: string;
}

const PARAMS = ["endpoint", "region", "path-style", "ca"];
/** S3's bucket naming rules (3-63 characters, lowercase, digits, dots and hyphens). */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const REGION = /^[a-z0-9-]{1,40}$/;

/**
 * Parses the part after `s3:`; `fail(why)` throws the caller's URL error. Amazon S3's
 * regional endpoint is the default, with virtual-hosted buckets.
 */
export function parseS3Url(rest: string, fail: (why: string) => never): S3Url {
  const match = /^\/\/([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?$/.exec(rest);
  if (!match) fail('write "s3://bucket/prefix", with parameters after "?"');
  const bucket = match[1];
  if (!BUCKET.test(bucket)) {
    fail(`"${bucket}" is not an S3 bucket name (3-63 lowercase letters, digits, "." and "-")`);
  }
  let prefix = (match[2] ?? "").replace(/^\/+/, "").replace(/\/+$/, "");
  try {
    prefix = decodeURIComponent(prefix);
  } catch {
    fail('its prefix holds a malformed %-escape: write "%" as "%25"');
  }
  if (prefix.split("/").some((part) => part === "." || part === "..")) {
    fail('its prefix holds a "." or ".." segment, which S3 keeps as a name: remove it');
  }
  const params = new URLSearchParams(match[3] ?? "");
  const unknown = [...params.keys()].find((key) => !PARAMS.includes(key));
  if (unknown !== undefined) {
    fail(`unknown parameter "${unknown}" (known: ${PARAMS.join(", ")})`);
  }
  const twice = PARAMS.find((key) => params.getAll(key).length > 1);
  if (twice !== undefined) fail(`"${twice}" is given more than once: keep the one you mean`);
  const region = params.get("region") ?? "us-east-1";
  if (!REGION.test(region)) fail(`"${region}" is not a region name (e.g. us-east-1)`);
  const pathStyleText = params.get("path-style") ?? "0";
  if (pathStyleText !== "0" && pathStyleText !== "1") fail('path-style must be "0" or "1"');
  const endpoint = params.get("endpoint") ?? `https://s3.${region}.amazonaws.com`;
  let parsed: URL;
  try {
    parsed = new URL(endpoint);
  } catch {
    fail(`endpoint "${endpoint}" is not a URL (e.g. https://s3.example.com)`);
  }
  if (
    (parsed.protocol !== "http:" && parsed.protocol !== "https:") || parsed.pathname !== "/" ||
    parsed.search !== "" || parsed.username !== "" || parsed.password !== ""
  ) {
    fail(`endpoint "${endpoint}" must be http(s)://host[:port], with no path or credentials`);
  }
  // Virtual-hosted style puts the bucket before the host name, which an address has not.
  if (pathStyleText !== "1" && /^(\d+\.){3}\d+$|^\[/.test(parsed.hostname)) {
    fail(
      `endpoint "${endpoint}" is an IP address, so the bucket cannot go into its host name: ` +
        `add "&path-style=1"`,
    );
  }
  const ca = params.get("ca") ?? undefined;
  if (ca !== undefined) {
    if (!ca.startsWith("/")) {
      fail(`ca= must be the absolute path of a PEM file of CA certificates, not "${ca}"`);
    }
    if (parsed.protocol !== "https:") {
      fail(`ca= names the CA of an https:// endpoint, and "${endpoint}" is plain http`);
    }
  }
  return {
    scheme: "s3",
    bucket,
    prefix: prefix === "" ? "" : `${prefix}/`,
    endpoint: parsed.origin,
    region,
    pathStyle: pathStyleText === "1",
    ...(ca === undefined ? {} : { ca }),
  };
}

/** The `host:port` an S3 URL's requests go to (the port the scheme implies when none). */
export function s3HostPort(url: S3Url): { host: string; port: number } {
  const endpoint = new URL(url.endpoint);
  const host = url.pathStyle ? endpoint.hostname : `${url.bucket}.${endpoint.hostname}`;
  const port = endpoint.port !== ""
    ? Number(endpoint.port)
    : endpoint.protocol === "https:"
    ? 443
    : 80;
  return { host: host.replace(/^\[(.*)\]$/, "$1"), port };
}
