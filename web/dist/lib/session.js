// Who is signed in: the answer of GET /api/me, shared by every module.

/**
 * @typedef {{ id: string, name: string, tier: string, kind: string, parent?: string | null }} Site
 * @typedef {{ id: string, display_name: string, roles: string[], specialties: string[], disabled?: boolean }} User
 * @typedef {{ user: User, site: Site, csrf_token: string, capabilities: string[] }} Me
 */

/** @type {{ me: Me | null }} */
export const session = { me: null };

/** @returns {Me} the signed-in person (pages run only when there is one) */
export function me() {
  if (!session.me) throw new Error('not signed in');
  return session.me;
}

/** @param {string} cap */
export function can(cap) {
  return !!(session.me && session.me.capabilities.includes(cap));
}
