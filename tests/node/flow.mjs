// A Node.js client of the KooGallery mesh that knows only proto/ (stubs loaded at run time by
// @grpc/proto-loader, calls by @grpc/grpc-js), driving the registration flow end to end:
// import an account -> read the agreement -> a refused submission, its google.rpc details
// decoded -> a valid submission -> review claim and approve -> the approval and the seller.
//
// Run by tests/python/test_node_client.py against the mesh the Python tests start; it takes
// everything from the environment (KG_NODE_* below) and exits non-zero on the first failure.

import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import protobuf from "protobufjs";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const PROTO_ROOT = env("KG_NODE_PROTO_ROOT"); // proto/
const RPC_PROTO_ROOT = env("KG_NODE_RPC_PROTO_ROOT"); // google/rpc/*.proto
const SECRET = fs.readFileSync(env("KG_NODE_JWT_SECRET_FILE"), "utf8").trim();
const WEBSITE = env("KG_NODE_WEBSITE_URL");
const ADDR = {
  identity: env("KG_NODE_IDENTITY_ADDR"),
  registration: env("KG_NODE_REGISTRATION_ADDR"),
  review: env("KG_NODE_REVIEW_ADDR"),
};
const DEADLINE_MS = 20_000;
const FLOW_TIMEOUT_MS = 30_000;

// --- stubs ----------------------------------------------------------------------------------

const files = ["identity", "registration", "review"].map((s) =>
  path.join("koogallery", s, "v1", `${s}.proto`),
);
files.push(path.join("koogallery", "common", "v1", "error_reason.proto"));
// keepCase: the field names of proto/; enums as their names, so the code reads like the docs
const definition = protoLoader.loadSync(files, {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
});
const loaded = grpc.loadPackageDefinition(definition);
const kg = loaded.koogallery;
const creds = grpc.credentials.createInsecure();
const identity = new kg.identity.v1.IdentityCheckService(ADDR.identity, creds);
const registration = new kg.registration.v1.RegistrationService(ADDR.registration, creds);
const review = new kg.review.v1.ReviewService(ADDR.review, creds);

// google.rpc.Status and its details, to decode `grpc-status-details-bin`.
const rpcRoot = new protobuf.Root();
rpcRoot.resolvePath = (_origin, target) =>
  target.startsWith("google/protobuf/") ? target : path.join(RPC_PROTO_ROOT, target);
rpcRoot.loadSync(["google/rpc/status.proto", "google/rpc/error_details.proto"], { keepCase: true });
rpcRoot.resolveAll();
// Clients switch on ErrorInfo.reason through the ErrorReason enum of proto/.
const ErrorReason = protobuf
  .loadSync(path.join(PROTO_ROOT, files.at(-1)))
  .lookupEnum("koogallery.common.v1.ErrorReason");

/** The google.rpc details of a failed call: {code, message, errorInfo, badRequest, ...}. */
function richError(err) {
  const [bin] = err.metadata?.get("grpc-status-details-bin") ?? [];
  assert.ok(bin, `no grpc-status-details-bin on ${err.code} ${err.details}`);
  const status = rpcRoot.lookupType("google.rpc.Status").decode(bin);
  const out = { code: status.code, message: status.message };
  for (const any of status.details) {
    const name = any.type_url.split("/").pop(); // "google.rpc.ErrorInfo"
    const type = rpcRoot.lookupType(name);
    out[name.replace("google.rpc.", "")] = type.toObject(type.decode(any.value), {
      defaults: true,
    });
  }
  return out;
}

// --- tokens (HS256, as `koogallery token` mints them) ----------------------------------------

const b64url = (data) => Buffer.from(data).toString("base64url");
function token(role, sub) {
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const claims = b64url(
    JSON.stringify({ sub, role, iss: "koogallery", aud: "koogallery", iat: now, nbf: now - 1, exp: now + 600 }),
  );
  const sig = crypto.createHmac("sha256", SECRET).update(`${header}.${claims}`).digest("base64url");
  return `${header}.${claims}.${sig}`;
}
function as(role, sub) {
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token(role, sub)}`);
  return md;
}

function call(client, method, request, metadata) {
  return new Promise((resolve, reject) => {
    client[method](request, metadata, { deadline: Date.now() + DEADLINE_MS }, (err, reply) =>
      err ? reject(err) : resolve(reply),
    );
  });
}

async function waitFor(what, predicate) {
  const deadline = Date.now() + FLOW_TIMEOUT_MS;
  for (;;) {
    const result = await predicate();
    if (result) return result;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// --- test data --------------------------------------------------------------------------------

const USCC = "0123456789ABCDEFGHJKLMNPQRTUWXY";
function uscc() {
  let body = "91350100";
  for (let i = 0; i < 9; i++) body += crypto.randomInt(10);
  let total = 0;
  for (let i = 0; i < 17; i++) total += USCC.indexOf(body[i]) * (3 ** i % 31);
  return body + USCC[(31 - (total % 31)) % 31];
}
const withWrongCheckCharacter = (n) => n.slice(0, -1) + USCC[(USCC.indexOf(n.at(-1)) + 1) % USCC.length];

function crc32(buf) {
  let c = ~0;
  for (const byte of buf) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}
function png(width = 168, height = 80) {
  const chunk = (kind, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(kind), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const rows = [];
  for (let y = 0; y < height; y++) {
    rows.push(0);
    for (let x = 0; x < width; x++) rows.push(x % 256, (y * 3) % 256, 90);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", zlib.deflateSync(Buffer.from(rows), { level: 9 })),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

// --- the flow ---------------------------------------------------------------------------------

const accountId = `acct-node-${crypto.randomBytes(6).toString("hex")}`;
const operator = () => as("operator", "operator-node");
const applicant = () => as("applicant", accountId);
const reviewer = () => as("reviewer", "reviewer-node");
const address = { region_code: "CN", administrative_area: "Fujian", locality: "Fuzhou", address_lines: ["1 Software Avenue"] };

// 1. the account directory knows an eligible enterprise account
const imported = await call(identity, "ImportAccounts", {
  request_id: crypto.randomUUID(),
  accounts: [{
    account_id: accountId,
    enterprise_verified: true,
    verification_type: "VERIFICATION_TYPE_ENTERPRISE",
    verified_enterprise_name: `Fuzhou ${accountId} Software Co., Ltd.`,
    registered_address: address,
    cloud_services_enabled: true,
    email: `${accountId}@example.com`,
    mobile: "+8613800138000",
    locale: "en",
  }],
}, operator());
assert.equal(imported.failed_count, 0, JSON.stringify(imported.errors));

// 2. the agreement comes from the service: proto/ alone is enough to submit
const agreement = await call(registration, "GetSellerAgreement", {}, applicant());
assert.equal(crypto.createHash("sha256").update(agreement.text, "utf8").digest("hex"), agreement.text_sha256);
assert.match(agreement.effective_date, /^\d{4}-\d{2}-\d{2}$/);

const draft = (registrationNumber) => ({
  entity: { country: "CN", registration_number: registrationNumber },
  profile: {
    logo: png(),
    logo_content_type: "image/png",
    website_url: WEBSITE,
    introduction: "Example Software builds monitoring and backup tools for small and medium businesses running on the cloud.",
    contact: { name: "Li Wei", email: "li.wei@example.com", mobile: "+8613800138000" },
    customer_service_email: "support@example.com",
    customer_service_phone: "+8659187654321",
    registered_address: address,
    industry: "SOFTWARE",
    product_categories: ["SAAS"],
  },
  agreement: { agreement_version: agreement.version, text_sha256: agreement.text_sha256 },
});
const submit = (registrationNumber) =>
  call(registration, "SubmitApplication", {
    request_id: crypto.randomUUID(),
    account_id: accountId,
    application: draft(registrationNumber),
    logo_file_name: "logo.png",
  }, applicant());

// 3. a refused submission: the details are decoded from grpc-status-details-bin
const number = uscc();
const refused = await submit(withWrongCheckCharacter(number)).then(
  () => assert.fail("a wrong check character was accepted"),
  (err) => err,
);
assert.equal(refused.code, grpc.status.INVALID_ARGUMENT, refused.details);
const details = richError(refused);
assert.equal(details.code, grpc.status.INVALID_ARGUMENT);
assert.equal(details.ErrorInfo.domain, "registration.koogallery.io");
assert.equal(details.ErrorInfo.reason, "INVALID_ARGUMENT");
assert.equal(ErrorReason.values[details.ErrorInfo.reason], ErrorReason.values.INVALID_ARGUMENT);
const violation = details.BadRequest.field_violations.find(
  (v) => v.field === "application.entity.registration_number",
);
assert.ok(violation, JSON.stringify(details.BadRequest));
assert.match(violation.description, /^REGISTRATION_NUMBER_CHECK_CHARACTER: /);

// 4. the valid submission
const submitted = (await submit(number)).application;
assert.match(submitted.name, /^applications\//);

// 5. review: the task appears (outbox relay), a reviewer claims and approves it
const task = await waitFor(`the review task of ${submitted.name}`, async () => {
  const page = await call(review, "ListReviewTasks", { page_size: 500, subject: submitted.name }, reviewer());
  return page.review_tasks[0];
});
const claimed = (await call(review, "ClaimReviewTask", { request_id: crypto.randomUUID(), name: task.name, etag: task.etag }, reviewer())).review_task;
await call(review, "ApproveReviewTask", { request_id: crypto.randomUUID(), name: claimed.name, etag: claimed.etag, comment: "" }, reviewer());

// 6. the applicant sees the approval and its seller record
const approved = await waitFor(`${submitted.name} APPROVED`, async () => {
  const app = (await call(registration, "GetApplication", { name: submitted.name }, applicant())).application;
  return app.state === "APPLICATION_STATE_APPROVED" && app.seller ? app : null;
});
const seller = (await call(registration, "GetSeller", { name: approved.seller }, applicant())).seller;
assert.equal(seller.account_id, accountId);

console.log(JSON.stringify({ ok: true, application: approved.name, seller: seller.name, refused: details.ErrorInfo.reason }));
for (const client of [identity, registration, review]) client.close();
