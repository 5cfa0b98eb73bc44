import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, FastifySchemaCompiler } from 'fastify';
import Type, { type TSchema } from 'typebox';
import { Value } from 'typebox/value';
import { formatIssues, schemaIssues, type Issue } from '@switchyard/contracts';
import { isBusUnavailable } from '@switchyard/bus';
import { isDatabaseUnavailable } from '@switchyard/db';

/** A 4xx answer that names the fields at fault. */
export class RequestError extends Error {
  constructor(
    readonly statusCode: number,
    readonly error: string,
    message: string,
    readonly issues: readonly Issue[] = [],
  ) {
    super(message);
  }
}

/** A service the request needs did not answer (no responder, timeout): a 503 that names it. */
export class ServiceUnavailable extends Error {
  constructor(readonly service: string) {
    super(`${service} is unavailable; retry shortly`);
  }
}

export function badRequest(issues: Issue[], prefix = ''): RequestError {
  const withPrefix = issues.map((i) => ({ ...i, path: [prefix, i.path].filter(Boolean).join('.') }));
  return new RequestError(400, 'bad_request', formatIssues(withPrefix), withPrefix);
}

export const notFound = (message: string) => new RequestError(404, 'not_found', message);

const PART_PREFIX: Record<string, string> = { body: '', querystring: 'query', params: 'params', headers: 'headers' };

/**
 * Validates with the same checker the contracts use, so HTTP and NATS report a bad field the
 * same way. Unknown fields are errors (Ajv's default would silently drop them); query and
 * path values are converted from strings first.
 */
export const validatorCompiler: FastifySchemaCompiler<TSchema> =
  ({ schema, httpPart }) =>
  (data: unknown) => {
    // A route whose body is Type.Optional also takes a request without one.
    if (httpPart === 'body' && data == null && Type.IsOptional(schema)) return { value: undefined };
    let value: unknown = data ?? (httpPart === 'body' ? undefined : {});
    if (httpPart === 'querystring' || httpPart === 'params') value = Value.Default(schema, Value.Convert(schema, value as object));
    const issues = schemaIssues(schema, value).flatMap(perMissingField);
    if (issues.length) return { error: badRequest(issues, PART_PREFIX[httpPart ?? 'body']) };
    return { value };
  };

const MISSING = /^must have required properties (.+)$/;

/** "must have required properties a, b" on an object becomes one "required" issue per field, so each is named. */
function perMissingField(issue: Issue): Issue[] {
  const names = MISSING.exec(issue.message)?.[1]?.split(', ');
  if (!names) return [issue];
  return names.map((name) => ({ path: [issue.path, name].filter(Boolean).join('.'), message: 'required' }));
}

export interface ErrorBody {
  error: string;
  message: string;
  issues?: { field: string; message: string }[];
}

function answer(reply: FastifyReply, status: number, body: ErrorBody, withDetail: boolean) {
  // FastAPI clients of the compatibility surface read `detail`.
  return reply.code(status).send(withDetail ? { ...body, detail: body.message } : body);
}

function handle(err: FastifyError | RequestError | Error, request: FastifyRequest, reply: FastifyReply, withDetail: boolean) {
  if (err instanceof RequestError) {
    return answer(
      reply,
      err.statusCode,
      { error: err.error, message: err.message, ...(err.issues.length ? { issues: err.issues.map((i) => ({ field: i.path, message: i.message })) } : {}) },
      withDetail,
    );
  }
  const status = (err as FastifyError).statusCode;
  if (status && status >= 400 && status < 500) {
    const code = (err as FastifyError).code;
    const field = code?.startsWith('FST_ERR_CTP') ? 'body' : undefined;
    return answer(
      reply,
      status,
      {
        error: status === 415 ? 'unsupported_media_type' : status === 413 ? 'payload_too_large' : 'bad_request',
        message: field ? `body: ${err.message}` : err.message,
        ...(field ? { issues: [{ field, message: err.message }] } : {}),
      },
      withDetail,
    );
  }
  if (err instanceof ServiceUnavailable) {
    request.log.warn({ service: err.service }, 'service unavailable');
    reply.header('retry-after', '2');
    return answer(reply, 503, { error: 'unavailable', message: err.message }, withDetail);
  }
  if (isDatabaseUnavailable(err)) {
    request.log.warn({ err: err.message }, 'database unavailable');
    reply.header('retry-after', '2');
    return answer(reply, 503, { error: 'unavailable', message: 'the database is unavailable; retry shortly' }, withDetail);
  }
  if (isBusUnavailable(err)) {
    request.log.warn({ err: err.message }, 'NATS unavailable');
    reply.header('retry-after', '2');
    return answer(reply, 503, { error: 'unavailable', message: 'the message bus is unavailable; retry shortly' }, withDetail);
  }
  request.log.error({ err }, 'unhandled error');
  return answer(reply, 500, { error: 'internal', message: 'internal error' }, withDetail);
}

/**
 * One place decides what a caller sees; internals never leak on 5xx. `detail` adds FastAPI's
 * error field for a scope whose clients expect it (the /api compatibility surface).
 */
export function installErrorHandler(app: FastifyInstance, opts: { detail?: boolean } = {}): void {
  const withDetail = opts.detail ?? false;
  app.setErrorHandler((err: FastifyError | RequestError | Error, request, reply) => handle(err, request, reply, withDetail));
  app.setNotFoundHandler((request, reply) => answer(reply, 404, { error: 'not_found', message: `no route ${request.method} ${request.url}` }, withDetail));
}
