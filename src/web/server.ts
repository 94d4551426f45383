import { readFileSync } from "node:fs";
import Fastify, { type FastifyError, type FastifyInstance } from "fastify";
import { FAULT_MECHANISMS, MIGRATION_MODES } from "../migration/config.js";
import { MIGRATION_STATUS_LABELS } from "../migration/stats.js";
import { MigrationRuns, type RunEvent, type RunRequest } from "./migration-runs.js";

/** The page, kept next to this file's source (compiled code runs from dist/src/web). */
const PAGE = new URL("../../../src/web/dashboard.html", import.meta.url);

const RUN_REQUEST_SCHEMA = {
  type: "object",
  additionalProperties: false,
  properties: {
    memMiB: { type: "integer", minimum: 16, maximum: 1024 },
    vcpus: { type: "integer", minimum: 1, maximum: 8 },
    mode: { type: "string", enum: [...MIGRATION_MODES] },
    faultMechanism: { type: "string", enum: [...FAULT_MECHANISMS] },
  },
} as const;

const DEFAULT_REQUEST: RunRequest = {
  memMiB: 64,
  vcpus: 4,
  mode: "postcopy",
  faultMechanism: "userfault",
};

/**
 * The dashboard's HTTP side (fastify): the page, and a small JSON API to
 * start a live migration and follow it as Server-Sent Events.
 *
 *   GET  /                      the page
 *   POST /api/runs              start a migration {memMiB, vcpus, mode, faultMechanism}:
 *                               201 {id}; 400 naming what is wrong; 409 while one runs
 *   GET  /api/runs/:id          {id, request, done, events}
 *   GET  /api/runs/:id/events   text/event-stream: every event so far, then each new
 *                               one, until `end`
 */
export function createDashboard(cli: string): { app: FastifyInstance; runs: MigrationRuns } {
  // Requests as sent: an unknown field or a wrong type is refused, not dropped or converted.
  const app = Fastify({
    logger: false,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
  });
  const runs = new MigrationRuns(cli);
  const page = readFileSync(PAGE, "utf8").replace(
    "__STATUS_LABELS__",
    JSON.stringify(MIGRATION_STATUS_LABELS),
  );

  app.get("/", (_request, reply) => reply.type("text/html; charset=utf-8").send(page));

  app.post<{ Body: Partial<RunRequest> | null }>(
    "/api/runs",
    { schema: { body: RUN_REQUEST_SCHEMA } },
    (request, reply) => {
      const run = runs.start({ ...DEFAULT_REQUEST, ...request.body });
      if (!run) {
        return reply
          .code(409)
          .send({ error: `migration ${runs.current?.id} is still running; one at a time` });
      }
      return reply.code(201).send({ id: run.id, request: run.request });
    },
  );

  app.get<{ Params: { id: string } }>("/api/runs/:id", (request, reply) => {
    const run = runs.get(request.params.id);
    if (!run) return reply.code(404).send({ error: `no run ${request.params.id}` });
    return reply.send(run);
  });

  app.get<{ Params: { id: string } }>("/api/runs/:id/events", (request, reply) => {
    if (!runs.get(request.params.id)) {
      return reply.code(404).send({ error: `no run ${request.params.id}` });
    }
    reply.hijack();
    const out = reply.raw;
    out.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      connection: "keep-alive",
    });
    const send = (event: RunEvent) => {
      out.write(`data: ${JSON.stringify(event)}\n\n`);
      if (event.event === "end") out.end();
    };
    const stop = runs.watch(request.params.id, send);
    out.on("close", stop);
  });

  // Errors as JSON with the reason (a schema's names the field: "body/vcpus must be <= 8").
  app.setErrorHandler((error: FastifyError, _request, reply) => {
    return reply.code(error.statusCode ?? 500).send({ error: error.message });
  });
  return { app, runs };
}
