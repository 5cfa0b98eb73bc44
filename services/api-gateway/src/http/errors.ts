import type { FastifyError, FastifyInstance, FastifySchemaCompiler } from 'fastify';
import type { TSchema } from 'typebox';
import { Value } from 'typebox/value';
import { formatIssues, schemaIssues, type Issue } from '@switchyard/contracts';
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
export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => (data: unknown) => {
  let value: unknown = data ?? (httpPart === 'body' ? undefined : {});
  if (httpPart === 'querystring' || httpPart === 'params') value = Value.Default(schema, Value.Convert(schema, value as object));
  const issues = schemaIssues(schema, value);
  if (issues.length) return { error: badRequest(issues, PART_PREFIX[httpPart ?? 'body']) };
  return { value };
};

function isNatsUnavailable(err: unknown): boolean {
  const name = (err as Error | undefined)?.name ?? '';
  const message = (err as Error | undefined)?.message ?? '';
  return /NoResponders|Timeout|ClosedConnection|DrainingConnection|ConnectionError|RequestError/.test(name) || /no responders|timeout|connection (closed|draining)|disconnect/i.test(message);
}

/** One place decides what a caller sees; internals never leak on 5xx. */
export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | RequestError | Error, request, reply) => {
    if (err instanceof RequestError) {
      return reply.code(err.statusCode).send({ error: err.error, message: err.message, ...(err.issues.length ? { issues: err.issues.map((i) => ({ field: i.path, message: i.message })) } : {}) });
    }
    const status = (err as FastifyError).statusCode;
    if (status && status >= 400 && status < 500) {
      const code = (err as FastifyError).code;
      const field = code?.startsWith('FST_ERR_CTP') ? 'body' : undefined;
      return reply.code(status).send({
        error: status === 415 ? 'unsupported_media_type' : status === 413 ? 'payload_too_large' : 'bad_request',
        message: field ? `body: ${err.message}` : err.message,
        ...(field ? { issues: [{ field, message: err.message }] } : {}),
      });
    }
    if (isDatabaseUnavailable(err)) {
      request.log.warn({ err: err.message }, 'database unavailable');
      return reply.code(503).header('retry-after', '2').send({ error: 'unavailable', message: 'the database is unavailable; retry shortly' });
    }
    if (isNatsUnavailable(err)) {
      request.log.warn({ err: err.message }, 'NATS unavailable');
      return reply.code(503).header('retry-after', '2').send({ error: 'unavailable', message: 'the message bus is unavailable; retry shortly' });
    }
    request.log.error({ err }, 'unhandled error');
    return reply.code(500).send({ error: 'internal', message: 'internal error' });
  });
  app.setNotFoundHandler((request, reply) => reply.code(404).send({ error: 'not_found', message: `no route ${request.method} ${request.url}` }));
}
