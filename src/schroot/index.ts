// schroot's command line and output formats (DESIGN.md, "schroot
// compatibility"), pure: no files, no sessions. warden-schroot stands on it.
export { parseSchrootArgs, type RunOptions, type SchrootAction, type SchrootCall, type SchrootNotice, type Selection } from './args.js';
export { parseChrootName, type ChrootRef, type Namespace } from './names.js';
export { SchrootUsageError, usageErrorText } from './errors.js';
export { chrootInfo, sessionInfo, DEFAULT_ENVIRONMENT_FILTER, type ChrootInfo, type SessionFacts, type SessionInfo } from './model.js';
export { formatConfig, formatInfo, formatList, formatLocation, hasSource, type ConfigHeader, type Record } from './format.js';
