/** A request about subscriptions the API refuses, with its HTTP status. */
export class SubscriptionError extends Error {
  constructor (readonly status: 400 | 404 | 409, message: string) {
    super(message)
  }
}

/** The subscription is gone (deleted, on this node or another): what the API answers with 404. */
export const gone = (name: string): SubscriptionError => new SubscriptionError(404, `no subscription "${name}"`)
