export const SERVICE_NAMES = [
  'api-gateway',
  'exit-node-manager',
  'health-monitor',
  'load-balancer',
  'sleep-controller',
  'socket-activator',
  'tunnel-manager',
  'storage-sync',
] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];
