import type { AclPolicy } from '@switchyard/contracts';

/**
 * A tenant's policy document, as parsed from its HuJSON: the Tailscale/Headscale subset of
 * `groups`, `tagOwners`, `hosts`, `acls` and `tests`. Its shape is the contract's AclPolicy
 * (what `acl.evt.changed` carries); compilePolicy checks what its names mean.
 */
export type PolicyDocument = AclPolicy;
export type PolicyRule = NonNullable<PolicyDocument['acls']>[number];
export type PolicyTest = NonNullable<PolicyDocument['tests']>[number];

/**
 * Who opened a connection: `user` is the authenticated proxy user's name (absent for plain
 * TCP, where only the client address is known). An address that is not an IP literal matches
 * no host, IP or CIDR source.
 */
export interface ConnectionSource {
  readonly user?: string | undefined;
  readonly address: string;
}

/**
 * Where a connection goes: the tags of the pool it reaches and the port. For exit pools the
 * port is the CONNECT/SOCKS target port, for app pools the pool's public port, for the
 * activator the caught port.
 */
export interface ConnectionDestination {
  readonly tags: readonly string[];
  readonly port: number;
}

/** `rule` is the index in `acls` of the first rule that accepts, null for the default deny. */
export interface Decision {
  readonly allowed: boolean;
  readonly rule: number | null;
}

export interface CompileOptions {
  /**
   * Tags the tenant's pools carry now: a tag the policy names that no pool carries is reported
   * in `warnings` (a typo would otherwise deny silently). Not an error: pools come and go.
   */
  readonly knownTags?: Iterable<string>;
  /** The version the policy is stored at; 0 unless said. */
  readonly version?: number;
}

/** A policy compiled into lookups: `decide` does no parsing and walks only rules for the destination's tags. */
export interface CompiledPolicy {
  readonly version: number;
  /** Rules in `acls`. */
  readonly rules: number;
  /** The tests block of the document, checked (runPolicyTests runs them). */
  readonly tests: readonly PolicyTest[];
  /** Things worth telling the author that do not make the policy wrong. */
  readonly warnings: readonly string[];
  decide(src: ConnectionSource, dst: ConnectionDestination): Decision;
}

/** One case of a `tests` block that did not hold. */
export interface TestFailure {
  /** Where the case is: `tests[2].deny[0]`. */
  readonly path: string;
  readonly src: string;
  readonly dst: string;
  readonly expected: 'accept' | 'deny';
  /** The rule that accepted it (a deny case), or null (an accept case, denied by default). */
  readonly rule: number | null;
  /** `tests[2].deny[0]: "tag:db:5432" from "alice" was accepted by acls[1]` */
  readonly message: string;
}
