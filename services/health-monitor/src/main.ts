#!/usr/bin/env node
import Type from 'typebox';
import { CommonEnv } from '@switchyard/config';
import { runService } from '@switchyard/service-kit';

// Registers with the NATS Services API so $SRV.PING/INFO/STATS find it; its commands,
// events and endpoints arrive with the issue that builds the feature.
await runService({
  name: 'health-monitor',
  description: 'active and passive health checks, health scores and speed tests',
  env: Type.Object({ ...CommonEnv }),
  async start() {},
});
