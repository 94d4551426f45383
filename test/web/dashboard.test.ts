import assert from "node:assert/strict";
import { existsSync, mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { FastifyInstance } from "fastify";
import { type Browser, chromium } from "playwright-core";
import type { MigrationRuns, RunEvent } from "../../src/web/migration-runs.js";
import { createDashboard } from "../../src/web/server.js";

/**
 * The dashboard end to end: its HTTP API on a real socket, every migration
 * real (two faultline processes on loopback), and the page in Debian's
 * Chromium driven by playwright-core. Without Chromium the browser test is
 * skipped, except under CI (which installs it), where it fails.
 */

const CLI = fileURLToPath(new URL("../../../bin/faultline.js", import.meta.url));
const CHROMIUM = "/usr/bin/chromium";
const browserSkip =
  existsSync(CHROMIUM) || process.env.CI
    ? false
    : "skipped: Debian's chromium is not installed (apt-get install chromium)";

let app: FastifyInstance;
let runs: MigrationRuns;
let base = "";

before(async () => {
  ({ app, runs } = createDashboard(CLI));
  base = await app.listen({ host: "127.0.0.1", port: 0 });
});

after(async () => {
  await runs.idle();
  await app.close();
});

async function post(body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`${base}/api/runs`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

/** The run's Server-Sent Events until `end`. */
async function eventsOf(id: string): Promise<RunEvent[]> {
  const response = await fetch(`${base}/api/runs/${id}/events`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/event-stream/);
  const text = await response.text();
  return text
    .split("\n\n")
    .filter((chunk) => chunk.startsWith("data: "))
    .map((chunk) => JSON.parse(chunk.slice("data: ".length)) as RunEvent);
}

describe("the dashboard's API", { concurrency: false }, () => {
  test("GET / is the page", async () => {
    const response = await fetch(`${base}/`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^text\/html/);
    assert.match(await response.text(), /<title>faultline dashboard<\/title>/);
  });

  test("a request it cannot run is refused, naming what is wrong, and starts nothing", async () => {
    const cases: [unknown, RegExp][] = [
      [{ vcpus: 99 }, /body\/vcpus must be <= 8/],
      [{ memMiB: 8 }, /body\/memMiB must be >= 16/],
      [{ mode: "teleport" }, /body\/mode must be equal to one of the allowed values/],
      [{ faultMechanism: 3 }, /body\/faultMechanism must be string/],
      [{ vcpus: "4" }, /body\/vcpus must be integer/],
      [{ colour: "blue" }, /body must NOT have additional properties/],
    ];
    for (const [body, message] of cases) {
      const { status, json } = await post(body);
      assert.equal(status, 400, JSON.stringify(body));
      assert.match(String(json.error), message);
    }
    const malformed = await fetch(`${base}/api/runs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{not json",
    });
    assert.equal(malformed.status, 400);
    assert.equal(runs.current, null);
  });

  test("a migration runs as two processes, its events streamed until it ends verified; one at a time", async () => {
    const { status, json } = await post({ memMiB: 16, vcpus: 2 });
    assert.equal(status, 201);
    const id = String(json.id);
    const second = await post({});
    assert.equal(second.status, 409);
    assert.match(String(second.json.error), new RegExp(`migration ${id} is still running`));

    const events = await eventsOf(id);
    const end = events.at(-1)!;
    assert.equal(end.event, "end");
    assert.equal((end as { ok: boolean }).ok, true, JSON.stringify(end));
    const result = events.find((e) => e.event === "result" && e.side === "destination");
    assert.equal((result as { verified?: boolean } | undefined)?.verified, true);
    assert.ok(events.some((e) => e.event === "progress" && e.side === "source"));
    assert.ok(events.some((e) => e.event === "progress" && e.side === "destination"));

    // A late watcher is given the whole run again.
    assert.deepEqual(await eventsOf(id), events);
    const summary = (await (await fetch(`${base}/api/runs/${id}`)).json()) as { done: boolean };
    assert.equal(summary.done, true);
  });

  test("an unknown run is 404", async () => {
    for (const path of ["/api/runs/999", "/api/runs/999/events"]) {
      const response = await fetch(`${base}${path}`);
      assert.equal(response.status, 404);
      assert.deepEqual(await response.json(), { error: "no run 999" });
    }
  });
});

describe("the dashboard in Chromium", { skip: browserSkip, concurrency: false }, () => {
  let browser: Browser;

  before(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      // As root, without a sandbox; and no calls to the outside this machine cannot make.
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
  });

  after(async () => {
    await browser?.close();
  });

  test("Migrate: both bars fill, the figures appear, and the guest is verified", async () => {
    await runs.idle();
    const page = await browser.newPage();
    await page.goto(base);
    await page.selectOption("select[name=memMiB]", "16");
    await page.fill("input[name=vcpus]", "2");
    await page.click("#start");
    await page.waitForSelector("#result.ok, #result.failed", { timeout: 90_000 });
    const result = await page.textContent("#result");
    assert.equal(await page.getAttribute("#result", "class"), "ok", String(result));
    assert.match(String(result), /checksums are what it computes without migration/);
    for (const side of ["source", "destination"]) {
      const [value, max] = await page.$eval(`#${side}-bar`, (bar) => {
        const progress = bar as unknown as { value: number; max: number };
        return [progress.value, progress.max];
      });
      assert.ok(max > 1 && value === max, `${side}: ${value} of ${max}`);
    }
    assert.equal(await page.textContent("#destination-phase"), "completed");
    assert.match(String(await page.textContent("#checksums")), /^([0-9a-f]{8} ){2}\(verified\)$/);
    assert.match(String(await page.textContent("#downtime")), /^\d+\.\d ms$/);
    assert.match(String(await page.textContent("#latency")), /^p50 \d+ µs, p99 \d+ µs/);
    assert.equal(await page.isEnabled("#start"), true, "ready for another");
    const shot = join(mkdtempSync(join(tmpdir(), "faultline-dashboard-")), "migrated.png");
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(statSync(shot).size > 10_000);
    await page.close();
  });

  test("a value the server refuses is shown as the reason, and nothing runs", async () => {
    await runs.idle();
    const page = await browser.newPage();
    await page.goto(base);
    // The field's own max is 8; the server must hold the line too.
    await page.$eval("input[name=vcpus]", (input) => input.removeAttribute("max"));
    await page.fill("input[name=vcpus]", "12");
    await page.click("#start");
    await page.waitForSelector("#result.failed", { timeout: 10_000 });
    assert.equal(await page.textContent("#result"), "body/vcpus must be <= 8");
    assert.equal(runs.current, null);
    await page.close();
  });
});
