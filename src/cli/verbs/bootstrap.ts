// warden bootstrap DIR [--force]: a minimal chroot from host binaries.
import { bootstrapChroot } from '../../api/internal/bootstrap.js';
import type { Parsed } from '../args.js';
import { EXIT } from '../errors.js';
import { json } from '../output.js';

export default async function bootstrap(p: Parsed): Promise<number> {
  const r = await bootstrapChroot(p.positional[0]!, { force: p.options.force === true });
  if (p.options.json) {
    process.stdout.write(json(r));
  } else {
    process.stdout.write(
      `built ${r.dir} in ${Math.round(r.ms)} ms: ${r.busybox ? 'busybox' : `sh (${r.shell})`}, ${r.tools.length} tools, ${r.libraries.length} libraries` +
        `${r.skipped.length ? `; not on this host: ${r.skipped.join(', ')}` : ''}\n`,
    );
  }
  return EXIT.ok;
}
