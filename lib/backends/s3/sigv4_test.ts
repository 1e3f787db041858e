import { assertEquals } from "../../../tests/support/assert.ts";
import { EMPTY_SHA256 } from "./client.ts";
import { signRequest } from "./sigv4.ts";

const EXAMPLE = {
  keys: {
    accessKeyId: "AKIAIOSFODNN7EXAMPLE",
    secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
  },
  region: "us-east-1",
  now: new Date("2013-05-24T00:00:00Z"),
  payloadSha256: EMPTY_SHA256,
  method: "GET",
};

// The examples of AWS's Signature Version 4 documentation for S3 (header-based auth).
Deno.test("signRequest: AWS's documented example GET Bucket Lifecycle signs the same", async () => {
  const headers = await signRequest({
    ...EXAMPLE,
    url: "https://examplebucket.s3.amazonaws.com/?lifecycle",
    headers: {},
  });
  assertEquals(
    headers.get("authorization"),
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, " +
      "SignedHeaders=host;x-amz-content-sha256;x-amz-date, " +
      "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
  );
  assertEquals(headers.get("x-amz-date"), "20130524T000000Z");
});

Deno.test("signRequest: AWS's documented example GET Bucket (list) signs the same", async () => {
  const headers = await signRequest({
    ...EXAMPLE,
    url: "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J",
    headers: {},
  });
  assertEquals(
    headers.get("authorization")?.split("Signature=")[1],
    "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
  );
});

Deno.test("signRequest: the given headers and the session token are signed", async () => {
  const headers = await signRequest({
    ...EXAMPLE,
    keys: { ...EXAMPLE.keys, sessionToken: "token" },
    url: "https://examplebucket.s3.amazonaws.com/a",
    headers: { "if-none-match": "*", "content-md5": "1B2M2Y8AsgTpgAmY7PhCfg==" },
  });
  assertEquals(headers.get("x-amz-security-token"), "token");
  assertEquals(headers.get("if-none-match"), "*");
  assertEquals(
    headers.get("authorization")?.match(/SignedHeaders=([^,]*)/)?.[1],
    "content-md5;host;if-none-match;x-amz-content-sha256;x-amz-date;x-amz-security-token",
  );
});
