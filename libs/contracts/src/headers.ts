/**
 * NATS header names. NATS headers are case-sensitive on read (`MsgHdrs.get`), so every
 * writer and reader uses these constants; W3C trace context keys are lowercase.
 */
export const HEADERS = {
  traceparent: 'traceparent',
  tracestate: 'tracestate',
  /** Set by JetStream publish options (msgID); listed so nobody writes it by hand. */
  msgId: 'Nats-Msg-Id',
  deadLetterReason: 'sy-dlq-reason',
  deadLetterService: 'sy-dlq-service',
  deadLetterSubject: 'sy-dlq-subject',
} as const;
