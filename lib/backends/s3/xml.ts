/**
 * The little of S3's XML answers the backup reads: a ListObjectsV2 page (asked with
 * `encoding-type=url`, so keys are %-encoded and hold no markup), and single elements such
 * as an error's `<Code>`. S3's answers are flat and never nest an element in one of the
 * same name, so matching elements by name is exact.
 *
 * @module
 */
import type { S3Object } from "./client.ts";

const ENTITIES: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
};

/** Text with XML's character references resolved. */
function unescapeXml(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (whole, name: string) => {
    if (name.startsWith("#x")) return String.fromCodePoint(parseInt(name.slice(2), 16));
    if (name.startsWith("#")) return String.fromCodePoint(parseInt(name.slice(1), 10));
    return ENTITIES[name] ?? whole;
  });
}

/** The text of the first `<name>` element in `xml`, or `undefined`. */
export function xmlText(xml: string, name: string): string | undefined {
  const match = new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml);
  return match === null ? undefined : unescapeXml(match[1]);
}

/** Every `<name>…</name>` element's inner XML. */
function elements(xml: string, name: string): string[] {
  return [...xml.matchAll(new RegExp(`<${name}>([\\s\\S]*?)</${name}>`, "g"))].map((m) => m[1]);
}

/** The longest key S3 stores, in bytes. */
const MOST_KEY_LENGTH = 1024;

/** One page of ListObjectsV2: its objects, and the token for the next page when truncated. */
export function parseListing(xml: string): { objects: S3Object[]; nextToken?: string } {
  if (!/<ListBucketResult[\s>]/.test(xml)) {
    throw new Error(`Cannot list objects: the answer is not a ListBucketResult`);
  }
  const urlEncoded = xmlText(xml, "EncodingType") === "url";
  const objects = elements(xml, "Contents").map((contents) => {
    const key = xmlText(contents, "Key");
    const size = Number(xmlText(contents, "Size"));
    if (key === undefined || !Number.isSafeInteger(size) || size < 0) {
      throw new Error(`Cannot list objects: an entry has no key or size`);
    }
    const name = urlEncoded ? decodeURIComponent(key.replace(/\+/g, " ")) : key;
    // S3's keys are at most 1024 bytes, so never more UTF-16 units: what a listing's keys
    // hold in memory is bounded by their count (client.ts, LISTING_BOUND).
    if (name.length > MOST_KEY_LENGTH) {
      throw new Error(
        `Cannot list objects: an entry's key is longer than S3's ${MOST_KEY_LENGTH} bytes: ` +
          `the server is not answering as S3 does: check the endpoint`,
      );
    }
    return { key: name, size };
  });
  const truncated = xmlText(xml, "IsTruncated") === "true";
  const nextToken = xmlText(xml, "NextContinuationToken");
  if (truncated && nextToken === undefined) {
    throw new Error(`Cannot list objects: a truncated page has no NextContinuationToken`);
  }
  return truncated ? { objects, nextToken } : { objects };
}

/** An unfinished multipart upload, as ListMultipartUploads shows it. */
export interface Upload {
  key: string;
  uploadId: string;
}

/** One page of ListMultipartUploads: its uploads, and where the next page starts. */
export function parseUploads(xml: string): { uploads: Upload[]; next?: Upload } {
  if (!/<ListMultipartUploadsResult[\s>]/.test(xml)) {
    throw new Error(`Cannot list uploads: the answer is not a ListMultipartUploadsResult`);
  }
  const uploads = elements(xml, "Upload").map((upload) => {
    const key = xmlText(upload, "Key");
    const uploadId = xmlText(upload, "UploadId");
    if (key === undefined || uploadId === undefined) {
      throw new Error(`Cannot list uploads: an entry has no key or upload id`);
    }
    return { key, uploadId };
  });
  if (xmlText(xml, "IsTruncated") !== "true") return { uploads };
  const key = xmlText(xml, "NextKeyMarker");
  const uploadId = xmlText(xml, "NextUploadIdMarker");
  if (key === undefined || uploadId === undefined) {
    throw new Error(`Cannot list uploads: a truncated page has no next markers`);
  }
  return { uploads, next: { key, uploadId } };
}

/** One rule of a bucket's lifecycle configuration, as far as the backup cares. */
export interface LifecycleRule {
  /** Its `<ID>`; empty when it has none. */
  id: string;
  /** `<Status>Enabled</Status>`. */
  enabled: boolean;
  /** The keys it applies to start with this (its Filter's, or the older top-level, Prefix). */
  prefix: string;
  /** It applies only to objects with a tag (in its Filter); the backup tags none. */
  tagged: boolean;
  /** It expires current objects: `<Expiration>` with `<Days>` or `<Date>`. */
  expires: boolean;
  /** The storage classes its `<Transition>`s move current objects to. */
  transitions: string[];
}

/** The rules of a GetBucketLifecycleConfiguration answer. */
export function parseLifecycle(xml: string): LifecycleRule[] {
  if (!/<LifecycleConfiguration[\s>]/.test(xml)) {
    throw new Error(`Cannot read lifecycle rules: the answer is not a LifecycleConfiguration`);
  }
  return elements(xml, "Rule").map((rule) => {
    const expiration = elements(rule, "Expiration")[0] ?? "";
    return {
      id: xmlText(rule, "ID") ?? "",
      enabled: xmlText(rule, "Status") === "Enabled",
      prefix: xmlText(rule, "Prefix") ?? "",
      tagged: /<Tag>/.test(rule),
      expires: /<(Days|Date)>/.test(expiration),
      transitions: elements(rule, "Transition").map((t) => xmlText(t, "StorageClass") ?? ""),
    };
  });
}
