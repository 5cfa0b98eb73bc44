import type { Socket } from 'node:net';
import koffi from 'koffi';

// Node has no API for a redirected connection's original destination; libc's getsockopt
// with SO_ORIGINAL_DST (netfilter, IPv4) returns it as a struct sockaddr_in.
const SOL_IP = 0;
const SO_ORIGINAL_DST = 80;
const SOCKADDR_IN_SIZE = 16;

type GetSockOpt = (fd: number, level: number, name: number, val: Buffer, len: number[]) => number;
let getsockopt: GetSockOpt | undefined;

function libcGetsockopt(): GetSockOpt {
  getsockopt ??= koffi.load('libc.so.6').func('int getsockopt(int fd, int level, int name, _Out_ uint8_t *val, _Inout_ uint32_t *len)') as GetSockOpt;
  return getsockopt;
}

/**
 * Where a connection redirected by nftables was going (for one that was not redirected: where
 * it went); undefined when the kernel keeps no record of it (no connection tracking).
 */
export function originalDestination(socket: Socket): { address: string; port: number } | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return undefined;
  const buf = Buffer.alloc(SOCKADDR_IN_SIZE);
  if (libcGetsockopt()(fd, SOL_IP, SO_ORIGINAL_DST, buf, [SOCKADDR_IN_SIZE]) !== 0) return undefined;
  // struct sockaddr_in: family (2 bytes), port (network order), address (4 bytes).
  return { address: `${buf[4]}.${buf[5]}.${buf[6]}.${buf[7]}`, port: buf.readUInt16BE(2) };
}
