// `npm run nats:config`: writes the nats-server configuration (one nkey user per service, its
// permissions derived from the catalog) to infra/nats/nats-server.conf. Run it after changing
// libs/contracts (catalog.ts, streams.ts, permissions.ts); tests/nats-config.test.ts fails until
// the committed file is what this writes. Reads the contracts' source, so no build is needed.
import { writeFileSync } from 'node:fs';
import { NATS_CONFIG_PATH, natsServerConfig } from '../../libs/contracts/src/index.js';

writeFileSync(new URL(`../../${NATS_CONFIG_PATH}`, import.meta.url), natsServerConfig());
console.log(`wrote ${NATS_CONFIG_PATH}`);
