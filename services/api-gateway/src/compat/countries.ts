import { isKnownCountry } from '@switchyard/contracts';

/**
 * Codes the VPN Exit Controller and its clients use where ISO 3166-1 has another: they write
 * `uk` for the United Kingdom, whose ISO code is GB.
 */
const ALIASES: Readonly<Record<string, string>> = { uk: 'gb' };

/** A country as the /api caller wrote it: the ISO code Switchyard uses, and the code to answer with. */
export interface CompatCountry {
  /** Lower-case ISO 3166-1 alpha-2: what orders, pools and the catalog hold. */
  iso: string;
  /** Lower-case, as the caller wrote it (`uk` stays `uk`). */
  given: string;
}

/** The country of a path or a catalog key, or undefined for a code neither ISO nor an alias. */
export function compatCountry(raw: string): CompatCountry | undefined {
  const given = raw.toLowerCase();
  const iso = ALIASES[given] ?? given;
  return isKnownCountry(iso) ? { iso, given } : undefined;
}
