// Generated from handlers/openapi.json by clients/typescript/schema.go: do not edit.
// Regenerate: TALLY_UPDATE=1 go test ./clients/typescript -run TestSchemaFresh

export type AdjustmentRequest = {
  /** Non-zero: positive adds credits, negative removes them. */
  credits: Credits;
  /** cus_ id or external_id. */
  customer: string;
  idempotency_key?: string;
  /** Why the balance changes; shown to the customer. */
  reason: string;
};

/** A customer's credits now. */
export type Balance = {
  as_of: Timestamp;
  /** balance minus held: what a new debit or hold may use (plus overdraft_limit). */
  available: Credits;
  /** Credits the customer has (may be negative after an overdraft or a capture beyond the balance). */
  balance: Credits;
  /** Tally id of the customer. */
  customer: string;
  /** Lots that expire within 30 days. */
  expiring_soon: Lot[];
  /** Credits that expire within 30 days. */
  expiring_soon_credits: Credits;
  /** Credits reserved by active holds. */
  held: Credits;
  /** Lots with credits left, in burn order. */
  lots: Lot[];
  object: "balance";
  /** How far below zero debits may take the balance. */
  overdraft_limit: Credits;
};

/** One event's result: debit when status is 201, error otherwise. */
export type BatchItemResult = {
  debit?: Debit;
  error?: ErrorDetail;
  /** Present (true) when the event replayed an earlier one with the same idempotency_key. */
  replayed?: true;
  /** The status this event would have had on POST /api/v1/usage: 201, or an error status. */
  status: number;
};

/** Meters many actions in one request. */
export type BatchRequest = {
  /** Up to 1,000 usage events. Each is decoded and written on its own: an invalid event gets its own error result and does not fail the batch. */
  events: UsageRequest[];
};

/** Per-event results of a batch (not paginated: no has_more). */
export type BatchResult = {
  /** One result per event, in request order. */
  data: BatchItemResult[];
  object: "list";
};

/** The part of an entry taken from one lot. */
export type Burn = {
  credits: Credits;
  expires_at: Timestamp | null;
  lot: string;
  reason?: string;
  source: "purchase" | "promo" | "subscription" | "adjustment";
};

/** A held call's actual usage. */
export type CaptureRequest = {
  feature: string;
  /** Idempotency key (printable ASCII without spaces, at most 255 characters). The same as the Idempotency-Key header; send either, or both with the same value. */
  idempotency_key?: string;
  /** Tags to keep with the usage (user, project, model...): at most 20 keys of 1-40 characters, values of at most 500 characters, no control characters. Omitted from responses when empty. */
  metadata?: Record<string, string>;
  /** Instead of quantity, for a feature priced per dimension (send exactly one of the two). */
  quantities?: Quantities;
  /** The actual usage: more than zero. */
  quantity?: Quantity;
};

/** What a million units cost the product (from the model provider), for the margin; never charged. */
export type Cost = {
  /** ISO 4217, lower case; default: the price book's. */
  currency?: string;
  /** Major units (dollars) per 1,000,000 units. */
  per_million: number;
};

/** A bundle of credits sold at a fixed price. */
export type CreditPack = {
  /** false: off sale (not offered; auto-refills set up with it keep buying it). Omitted: on sale. */
  active?: boolean;
  /** Credits granted on top of credits with each purchase (omitted when none). */
  bonus_credits?: Credits;
  /** Credits the pack grants. */
  credits: Credits;
  id: string;
  name?: string;
  price: Money;
};

/** An amount of credits as a JSON number with at most 3 decimals (1 credit = 1,000 millicredits, which is how Tally stores it: exact integers, never floats). Requests with more than 3 decimals, or a number in a string, are refused with invalid_request. Charges are rounded down to the millicredit, in the customer's favour. */
export type Credits = number;

/** How custom top-up amounts are priced: the range a customer may type and what one unit of the currency buys. Omitted: the server's range at the smallest pack's rate. */
export type CustomTopUp = {
  /** Credits one major unit (1.00) of the currency buys; omitted or 0: the smallest pack's rate. */
  credits_per_unit?: Credits;
  /** Largest amount, in minor units. */
  max: number;
  /** Smallest amount, in minor units. */
  min: number;
};

/** A wallet holder. */
export type Customer = {
  created_at: Timestamp;
  customer_caps: SpendCaps;
  email: string;
  /** Your product's id. */
  external_id: string;
  /** Tally's id. */
  id: string;
  limits: Limits;
  name: string;
  object: "customer";
};

/** A customer to create. */
export type CustomerInput = {
  /** Billing email address (optional). */
  email?: string;
  /** Your product's id for this customer (required, unique, may not start with cus_). Usable wherever Tally takes a customer. */
  external_id: string;
  /** Display name (optional). */
  name?: string;
};

/** A page of customers, by id. */
export type CustomerList = List & {
  data?: Customer[];
};

/** The fields to change; a field left out stays as it is. */
export type CustomerUpdate = {
  /** Billing email address (optional). */
  email?: string;
  /** Display name (optional). */
  name?: string;
};

/** Metered usage that was charged. */
export type Debit = {
  balance_after: Credits;
  /** For a feature priced per dimension: each dimension's quantity and credits (quantity is then 0). Absent otherwise. */
  breakdown?: DimensionCharge[];
  created_at: Timestamp;
  /** price x quantity / unit_size, rounded down to 0.001. */
  credits_charged: Credits;
  /** Tally id of the customer. */
  customer: string;
  feature: string;
  /** The hold this debit captured (only for captures). */
  hold?: string;
  /** Ledger entry id. */
  id: string;
  metadata?: Record<string, string>;
  object: "debit";
  /** Price book version the usage was priced with. */
  price_version: number;
  quantity: Quantity;
};

/** One separately priced quantity of a feature (input tokens, output tokens...). */
export type Dimension = {
  cost?: Cost;
  /** Price in credits per unit_size units (zero or more). */
  credits: Credits;
  key: string;
  /** Default: the unit. */
  name?: string;
  /** Default: the key with spaces. */
  unit?: string;
  /** Units the price is for; 0 or absent means 1. */
  unit_size?: number;
};

/** One line of a debit's breakdown. */
export type DimensionCharge = {
  /** This dimension's price x quantity / unit_size, rounded down to 0.001. */
  credits: Credits;
  dimension: string;
  quantity: Quantity;
};

export type EmbedBalance = {
  available: Credits;
  balance: Credits;
  customer: string;
  depleted: boolean;
  held: Credits;
  /** Under the customer's low-balance line (the portal's rule). */
  low: boolean;
  object: "embed_balance";
  outlook: "depleted" | "no_usage" | "runs_out" | "beyond";
  /** When the available credits run out at the current pace (outlook runs_out). */
  runs_out_at: Timestamp | null;
  summary: string;
  token_expires_at: Timestamp;
  usage_per_day: Credits;
};

export type EmbedToken = {
  customer: string;
  expires_at: Timestamp;
  object: "embed_token";
  origin: string;
  /** Signed (HMAC-SHA256), starts with `tet1.`; give it to the page (data-token). */
  token: string;
};

export type EmbedTokenRequest = {
  /** The customer's `cus_` id or external_id. */
  customer: string;
  /** The origin of the page that shows the widget, scheme://host[:port]; the API key must list it among its allowed origins. */
  origin: string;
};

/** One append-only ledger entry. Optional fields are left out when empty. */
export type Entry = {
  /** Change to the balance (negative for debits and expiries). */
  amount: Credits;
  balance_after: Credits;
  /** For a feature priced per dimension: each dimension's quantity and credits (quantity is then 0 or absent). Absent otherwise. */
  breakdown?: DimensionCharge[];
  /** Which lots the credits came from. */
  burns?: Burn[];
  created_at: Timestamp;
  customer: string;
  feature?: string;
  /** Change to the held credits (holds +, captures and releases -). */
  held_delta: Credits;
  hold?: string;
  id: string;
  /** The lot a grant created or an expiry emptied. */
  lot?: string;
  metadata?: Record<string, string>;
  object: "entry";
  price_version?: number;
  quantity?: Quantity;
  reason?: string;
  source?: "purchase" | "promo" | "subscription" | "adjustment";
  type: "grant" | "debit" | "hold" | "hold_release" | "expiry" | "refund" | "adjustment";
};

/** A page of ledger entries, newest first. */
export type EntryList = List & {
  data?: Entry[];
};

/** The one shape of every API error. */
export type Error = {
  error: ErrorDetail;
};

/** An error: type and message, plus detail fields that depend on the type. */
export type ErrorDetail = {
  /** insufficient_credits: balance minus held credits. */
  available?: Credits;
  /** insufficient_credits: the customer's balance. */
  balance?: Credits;
  /** storage_unavailable: the storage error. */
  cause?: string;
  /** insufficient_credits: credits reserved by active holds. */
  held?: Credits;
  /** idempotency_conflict: the key that was reused. */
  idempotency_key?: string;
  /** spend_limit_exceeded: the cap. */
  limit?: Credits;
  /** spend_limit_exceeded: which cap. */
  limit_type?: "daily" | "monthly";
  /** Human-readable explanation, safe to show to a developer. */
  message: string;
  /** The request field or query parameter at fault, when there is one. */
  param?: string;
  /** unknown_feature: the price book version that was searched. */
  price_version?: number;
  /** insufficient_credits, spend_limit_exceeded: what the request needed. */
  required?: Credits;
  /** rate_limited: seconds to wait (also in the Retry-After header). */
  retry_after?: number;
  /** spend_limit_exceeded: whose cap. */
  scope?: "customer" | "API key";
  /** spend_limit_exceeded: already spent in the cap's period (UTC day or month). */
  spent?: Credits;
  /** hold_not_active: the hold's status. */
  status?: "active" | "captured" | "released" | "expired";
  /** insufficient_credits: the credit pack to offer the customer at once: the smallest that covers required minus available, or the one they bought last when it does (the largest when none covers). Absent when the price book has no packs. */
  suggested_pack?: CreditPack;
  type: ErrorType;
};

/** Stable, machine-readable error type; its meaning never changes once published. See docs/api.md for the HTTP status of each. */
export type ErrorType = "invalid_request" | "out_of_range" | "unauthorized" | "forbidden" | "not_found" | "customer_not_found" | "hold_not_found" | "idempotency_conflict" | "hold_not_active" | "conflict" | "insufficient_credits" | "request_too_large" | "unknown_feature" | "invalid_quantity" | "validation_failed" | "spend_limit_exceeded" | "account_frozen" | "rate_limited" | "too_many_streams" | "storage_unavailable" | "unavailable" | "internal" | "method_not_allowed" | "card_declined" | "no_payment_method" | "refund_window_closed" | "nothing_to_refund" | "payment_provider_error" | "link_used" | "link_expired" | "invalid_webhook_url" | "unknown_event_type" | "embed_token_invalid" | "embed_token_expired" | "embed_token_revoked" | "embed_wrong_customer" | "embed_wrong_origin" | "origin_not_allowed";

/** A billable action and its price. Responses always carry key, name, unit, credits and unit_size. */
export type Feature = {
  cost?: Cost;
  /** Price in credits per unit_size units (zero or more). */
  credits?: Credits;
  description?: string;
  /** Prices per dimension (input, cached and output tokens...). A feature with dimensions has credits 0 and is metered with quantities, not quantity. */
  dimensions?: Dimension[];
  key: string;
  /** Default: the key. */
  name?: string;
  /** Default: unit. */
  unit?: string;
  /** Units the price is for (gpt-4o.tokens: 2.5 credits per 1000 tokens). 0 or left out: 1. */
  unit_size?: number;
};

/** The result of a grant. */
export type Grant = {
  balance_after: Credits;
  created_at: Timestamp;
  credits: Credits;
  customer: string;
  /** Ledger entry id. */
  id: string;
  lot: Lot;
  object: "grant";
};

/** Adds credits to a customer as a new lot. */
export type GrantRequest = {
  /** Credits to add: more than zero. */
  credits: Credits;
  /** cus_ id or external_id. */
  customer: string;
  /** When what is left of the lot expires (in the future). Default: never. */
  expires_at?: Timestamp;
  /** Idempotency key (printable ASCII without spaces, at most 255 characters). The same as the Idempotency-Key header; send either, or both with the same value. */
  idempotency_key?: string;
  /** Burn priority; lower burns first. Default: by source. */
  priority?: number;
  /** Shown in the ledger ("Starter pack ($10.00)"). */
  reason?: string;
  /** Until when a purchase may be refunded. */
  refundable_until?: Timestamp;
  /** Where the credits come from; sets the default burn priority (promo 10, subscription 20, adjustment 30, purchase 50). */
  source: "purchase" | "promo" | "subscription" | "adjustment";
};

/** A reservation of credits. */
export type Hold = {
  closed_at: Timestamp | null;
  created_at: Timestamp;
  /** Credits reserved. */
  credits: Credits;
  /** Captured holds: what the usage cost (may be more or less than credits). */
  credits_charged?: Credits;
  customer: string;
  debit?: Debit;
  expires_at: Timestamp;
  id: string;
  object: "hold";
  status: "active" | "captured" | "released" | "expired";
};

/** Reserves credits for a call whose cost is known only at the end. */
export type HoldRequest = {
  /** Credits to reserve: the most the call may cost. */
  credits: Credits;
  /** cus_ id or external_id. */
  customer: string;
  /** Idempotency key (printable ASCII without spaces, at most 255 characters). The same as the Idempotency-Key header; send either, or both with the same value. */
  idempotency_key?: string;
  /** Seconds until the hold expires and its credits return (1-86400; 0 or left out: 600). Both bounds are the operator's policy (default and longest hold lifetime), so an installation may allow less. */
  ttl_seconds?: number;
};

/** The operator's limits on a customer (or an API key): spend caps and the overdraft limit. A customer cannot raise or remove them from the portal; the caps they set there are customer_caps, and both apply. */
export type Limits = {
  daily_cap: Credits | null;
  monthly_cap: Credits | null;
  /** How far below zero the balance may go for ordinary debits and holds. */
  overdraft_limit: Credits;
};

/** Replaces all of a customer's spend controls: a field left out or null removes that cap. */
export type LimitsInput = {
  daily_cap?: Credits | null;
  monthly_cap?: Credits | null;
  /** Overdraft allowed, zero or more; left out means 0. */
  overdraft_limit?: Credits;
};

/** A page of a paginated listing. */
export type List = {
  /** This page's items. */
  data: unknown[];
  /** Whether another page follows. */
  has_more: boolean;
  /** Pass as ?cursor= to get the next page. Present only when has_more is true. */
  next_cursor?: string;
  object: "list";
};

/** A grant of credits that debits burn down, in burn order: priority, then soonest expiry, then oldest. */
export type Lot = {
  /** Credits the lot was granted with. */
  amount: Credits;
  created_at: Timestamp;
  expires_at: Timestamp | null;
  /** A frozen lot is not burned (for example during a payment dispute). */
  frozen: boolean;
  id: string;
  /** Burn order: lower burns first. */
  priority: number;
  reason: string;
  refundable_until: Timestamp | null;
  /** Credits left in the lot. */
  remaining: Credits;
  source: "purchase" | "promo" | "subscription" | "adjustment";
};

export type Money = {
  /** Minor units (cents): 1000 is $10.00. */
  amount: number;
  /** ISO 4217, answered in lower case (usd). */
  currency?: string;
};

/** A subscription plan: a price per interval that includes credits each period. Its credits are a lot with source subscription that expires at the period's end, unless the rollover policy keeps some. */
export type Plan = {
  credits: Credits;
  interval?: "month" | "year";
  /** 1-64 lower-case letters, digits, '.', '_', ':' or '-' */
  key: string;
  name?: string;
  /** subscribers may buy credit packs on top */
  packs?: boolean;
  price: Money;
  /** burn priority of the plan's credits (lower burns first); default 20, before purchased credits (50) */
  priority?: number;
  rollover?: {
    max?: Credits;
    /** how many periods rolled-over credits live after the period they came from */
    periods?: number;
    policy?: "none" | "up_to" | "all";
  };
};

export type PortalSession = {
  customer: string;
  expires_at: Timestamp;
  flow?: string;
  object: "portal_session";
  required?: Credits;
  return_url: string;
  /** Single-use sign-in link; redirect the customer to it. */
  url: string;
};

export type PortalSessionRequest = {
  /** cus_ id or external_id. */
  customer: string;
  /** Which page to open first: empty for the overview; top_up for the focused top-up (one pack that covers what is needed, one button that pays it), which sends the customer back to return_url once paid. */
  flow?: "" | "top_up";
  /** With flow top_up: what the refused action needed (the 402's required), for the page to say and to suggest a pack that covers it. More than zero. */
  required?: Credits;
  /** Absolute http(s) URL in your product that "Back to" and sign-out lead to. */
  return_url: string;
};

/** One immutable version of what things cost. */
export type PriceBook = {
  /** Set on a scheduled version an admin cancelled before it took effect: it is never in effect. Omitted otherwise. */
  cancelled_at?: Timestamp;
  /** Who cancelled it (admin:adm_...), with cancelled_at. */
  cancelled_by?: string;
  currency: string;
  custom_top_up?: CustomTopUp;
  /** When the version takes effect (its publication, or the later time it was scheduled for). Debits use the version whose effective_at is the latest at or before their time. */
  effective_at?: Timestamp;
  features: Feature[];
  object: "price_book";
  packs: CreditPack[];
  /** subscription plans (omitted when there are none) */
  plans?: Plan[];
  published_at: Timestamp;
  /** Who published it (admin:adm_...); omitted for the CLI and the API. */
  published_by?: string;
  version: number;
};

/** A price book to publish. Unknown fields (including object) are refused. */
export type PriceBookInput = {
  /** ISO 4217 code; default usd. */
  currency?: string;
  custom_top_up?: CustomTopUp;
  /** When the version takes effect; a later time schedules it (omitted or past: now). */
  effective_at?: Timestamp;
  features: Feature[];
  packs?: CreditPack[] | null;
  /** subscription plans (omitted when there are none) */
  plans?: Plan[];
  /** Accepted and ignored: Tally sets the time. */
  published_at?: Timestamp;
  /** Accepted and ignored: Tally records who published. */
  published_by?: string;
  /** Accepted and ignored: Tally numbers versions. */
  version?: number;
};

/** Every price book version, newest first (one page: has_more is false). */
export type PriceBookList = List & {
  data?: PriceBook[];
};

/** A quantity per dimension, for a feature priced per dimension (its dimensions in the price book): at most 20 keys, each zero or more, at least one above zero. Each dimension is priced at its own rate, rounded down to 0.001 credit, and the sum is charged as one debit. */
export type Quantities = Record<string, Quantity>;

/** An amount of a feature's unit (requests, images, tokens, seconds) as a JSON number with at most 3 decimals, such as 1, 1234 or 12.345. */
export type Quantity = number;

/** What an action would cost, without writing anything. */
export type Quote = {
  /** Whether a debit of this amount would be accepted now. */
  affordable: boolean;
  available: Credits;
  /** For a feature priced per dimension: each dimension's quantity and credits (quantity is then 0). Absent otherwise. */
  breakdown?: DimensionCharge[];
  /** What the action would cost now. */
  credits: Credits;
  customer: string;
  feature: string;
  object: "quote";
  price_version: number;
  quantity: Quantity;
  /** Why not, when affordable is false. */
  reason?: "insufficient_credits" | "spend_limit_exceeded" | "account_frozen";
};

/** The caps a customer set for themselves in the portal. Read-only in the API. They apply beside the operator's caps in limits (the tighter refuses, with scope customer_self), and can never be set above them. */
export type SpendCaps = {
  daily_cap: Credits | null;
  monthly_cap: Credits | null;
};

export type Subscription = {
  cancel_at_period_end?: boolean;
  canceled_at?: string;
  created_at?: string;
  current_period_end?: string;
  current_period_start?: string;
  /** Tally's customer id */
  customer?: string;
  /** sub_... */
  id?: string;
  /** a downgrade waiting for the period's end */
  next_plan?: string;
  object?: "subscription";
  period_credits?: {
    granted?: Credits;
    left?: Credits;
    rolled_over?: Credits;
  };
  /** the plan's key */
  plan?: string;
  /** the price book version whose plan the customer pays for */
  price_version?: number;
  provider?: "sandbox" | "stripe";
  /** The period ended and the renewal's credits have not arrived yet (the payment provider's invoice is not paid): current_period_end may be in the past, or the new period may have no credits. Clears when the invoice is paid. */
  renewal_pending?: boolean;
  status?: "active" | "past_due" | "canceled";
};

/** RFC 3339 time in UTC with microseconds. */
export type Timestamp = string;

export type TopUp = {
  card_brand?: string;
  card_last4?: string;
  created_at: Timestamp;
  credits: Credits;
  customer: string;
  description?: string;
  failure_reason?: string;
  id: string;
  lot?: string;
  next_action_url?: string;
  object: "top_up";
  origin: "portal" | "auto_refill" | "api";
  pack?: string;
  payment_id?: string;
  price: Money;
  provider?: string;
  receipt_url?: string;
  refundable_until?: Timestamp | null;
  /** Minor units. */
  refunded_amount?: number;
  refunded_credits?: Credits;
  status: "pending" | "requires_action" | "succeeded" | "failed" | "refunded";
  updated_at?: Timestamp;
};

/** Meters one action. */
export type UsageRequest = {
  /** cus_ id or external_id. */
  customer: string;
  /** Feature key from the current price book (chat.request, gpt-4o.tokens...). */
  feature: string;
  /** Idempotency key (printable ASCII without spaces, at most 255 characters). The same as the Idempotency-Key header; send either, or both with the same value. */
  idempotency_key?: string;
  /** Tags to keep with the usage (user, project, model...): at most 20 keys of 1-40 characters, values of at most 500 characters, no control characters. Omitted from responses when empty. */
  metadata?: Record<string, string>;
  /** Instead of quantity, for a feature priced per dimension (send exactly one of the two). */
  quantities?: Quantities;
  /** Units of the feature's unit: more than zero. */
  quantity?: Quantity;
};

export type WebhookAttempt = {
  attempted_at?: Timestamp;
  error?: string;
  latency_ms?: number;
  /** The first 512 bytes of the answer's body. */
  response?: string;
  /** 0: no HTTP answer (see error). */
  status_code?: number;
};

export type WebhookDelivery = {
  attempt_count?: number;
  attempts?: WebhookAttempt[];
  created_at?: Timestamp;
  customer?: string;
  endpoint?: string;
  event_type?: string;
  id?: string;
  /** The webhook-id header: evt_<seq> for an event, msg_test_... for a test. */
  message_id?: string;
  next_attempt_at?: Timestamp;
  object?: "webhook_delivery";
  status?: "pending" | "succeeded" | "failed";
};

export type WebhookDeliveryList = List & {
  data?: WebhookDelivery[];
};

export type WebhookEndpoint = {
  created_at: Timestamp;
  description?: string;
  /** Why Tally disabled it (deliveries failed for 3 days); absent when enabled or disabled by a person. */
  disabled_reason?: string;
  enabled: boolean;
  event_types: string[];
  id: string;
  object: "webhook_endpoint";
  previous_secret_valid_until?: Timestamp;
  /** whsec_...: only in the answers of create and rotate-secret. */
  secret?: string;
  updated_at?: Timestamp;
  url: string;
};

export type WebhookEndpointInput = {
  description?: string;
  /** Default true. */
  enabled?: boolean;
  /** Event types to receive (see docs/api.md, Webhooks), or ["*"] for every type. Default ["*"]. Unknown types are 422 unknown_event_type. */
  event_types?: string[];
  idempotency_key?: string;
  /** An absolute http(s) URL. Loopback and private addresses only with --webhook-allow-private (422 invalid_webhook_url). */
  url?: string;
};

export type WebhookEndpointList = List & {
  data?: WebhookEndpoint[];
};
