import { assertEquals } from "../../../tests/support/assert.ts";
import { EMPTY_SHA256, signRequest, uriEncode } from "./sigv4.ts";

Deno.test("signRequest: AWS's documented example GET Object signs the same", () => {
  // "Example: GET Object" of AWS's Signature Version 4 documentation for S3.
  const headers = signRequest({
    method: "GET",
    url: new URL("https://examplebucket.s3.amazonaws.com/test.txt"),
    headers: { Range: "bytes=0-9" },
    payloadSha256: EMPTY_SHA256,
    keys: {
      accessKeyId: "AKIAIOSFODNN7EXAMPLE",
      secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    },
    region: "us-east-1",
    now: new Date("2013-05-24T00:00:00Z"),
  });
  assertEquals(
    headers.authorization,
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, " +
      "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, " +
      "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
  );
  assertEquals(headers["x-amz-date"], "20130524T000000Z");
});

Deno.test("uriEncode: everything but unreserved characters, as SigV4 wants", () => {
  assertEquals(uriEncode("a b/c*(d)!'~._-"), "a%20b%2Fc%2A%28d%29%21%27~._-");
});
