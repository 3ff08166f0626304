import type { Migration } from 'kysely';
import * as foundation from './20261121090000_foundation.js';
import * as coreEngine from './20261121120000_core_engine.js';
import * as mattermostBot from './20261121150000_mattermost_bot.js';
import * as outboxLeaseOwner from './20261127120000_outbox_lease_owner.js';
import * as requesterConfirmation from './20261127130000_requester_confirmation.js';
import * as statusPost from './20261128090000_status_post.js';
import * as killSwitch from './20261128100000_kill_switch.js';
import * as slashCommand from './20261128120000_slash_command.js';

/**
 * Every migration, by name (timestamp first, so names sort in apply order). A test checks
 * that this list and the files in this folder agree.
 */
export const migrations: Record<string, Migration> = {
  '20261121090000_foundation': foundation,
  '20261121120000_core_engine': coreEngine,
  '20261121150000_mattermost_bot': mattermostBot,
  '20261127120000_outbox_lease_owner': outboxLeaseOwner,
  '20261127130000_requester_confirmation': requesterConfirmation,
  '20261128090000_status_post': statusPost,
  '20261128100000_kill_switch': killSwitch,
  '20261128120000_slash_command': slashCommand,
};
