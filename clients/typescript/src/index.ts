// Tally's TypeScript client: typed calls of the metering API over the
// global fetch (Node 18+, Deno, Bun, Cloudflare Workers and other edge
// runtimes, browsers), with no runtime dependency. Every write carries an
// idempotency key (generated when not given) and is sent again with the
// same key after a network error or a 5xx answer, so it applies once.

import type * as S from "./schema.js";

export type * from "./schema.js";

/** Options of a Client. */
export interface ClientOptions {
  /** Extra attempts after a network error or a 5xx answer (default 3). */
  retries?: number;
  /** The first wait before a retry in ms (default 250), doubled each time with full jitter, at most 10 s. */
  backoffMs?: number;
  /** A fetch to use instead of the global one. */
  fetch?: typeof fetch;
  /** Per-attempt timeout in ms (default 30 s). */
  timeoutMs?: number;
}

/** The error object of an answer: the API's ErrorDetail, or the client's own network_error. */
export type ErrorInfo = Omit<Partial<S.ErrorDetail>, "type"> & { type?: S.ErrorType | "network_error" | (string & {}) } & Record<string, unknown>;

/** A Tally error answer (or type "network_error" when none came). */
export class TallyError extends Error {
  /** HTTP status; 0 for network_error. */
  readonly status: number;
  /** The stable error type: insufficient_credits, validation_failed, ... */
  readonly type: string;
  /** The error object of the answer, every detail field included. */
  readonly detail: ErrorInfo;
  /** The idempotency key the request was sent with, to retry it later. */
  readonly idempotencyKey?: string;
  readonly requestId?: string;

  constructor(status: number, detail: ErrorInfo, idempotencyKey?: string, requestId?: string) {
    super(`tally: ${status ? status + " " : ""}${detail.type}: ${detail.message}`);
    this.name = "TallyError";
    this.status = status;
    this.type = String(detail.type ?? "unknown");
    this.detail = detail;
    this.idempotencyKey = idempotencyKey;
    this.requestId = requestId;
  }

  /** insufficient_credits: the credits the action needed. */
  get required(): number | undefined {
    return this.detail.required;
  }

  /** insufficient_credits: the smallest pack that covers what is missing. */
  get suggestedPack(): S.CreditPack | undefined {
    return this.detail.suggested_pack;
  }
}

/**
 * An idempotency key, as the client makes for writes that give none: 48 bits
 * of Unix milliseconds, then 80 random bits, in hex. Keys made later sort
 * later (as a UUIDv7 does), so each lands at the end of Tally's key index
 * instead of on a page of its own (docs/api.md, Idempotency).
 */
export function newIdempotencyKey(): string {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  let ms = Date.now();
  for (let i = 5; i >= 0; i--) {
    b[i] = ms % 256;
    ms = Math.floor(ms / 256);
  }
  return "idem_" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

type Json = Record<string, unknown>;

/** Calls one Tally server with one API key. */
export class Client {
  private readonly base: string;
  private readonly key: string;
  private readonly retries: number;
  private readonly backoffMs: number;
  private readonly timeoutMs: number;
  private readonly fetch: typeof fetch;

  constructor(baseURL: string, apiKey: string, opts: ClientOptions = {}) {
    this.base = baseURL.replace(/\/+$/, "");
    this.key = apiKey;
    this.retries = Math.max(0, opts.retries ?? 3);
    this.backoffMs = opts.backoffMs ?? 250;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.fetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** Meters one action. On 402 the TallyError says what was needed; retry with the same idempotency_key after a top-up. */
  usage(req: S.UsageRequest): Promise<S.Debit> {
    const body = { ...req, idempotency_key: req.idempotency_key ?? newIdempotencyKey() };
    return this.request("POST", "/api/v1/usage", body, body.idempotency_key);
  }

  /** Meters up to 1,000 actions; each gets an idempotency key if it has none, so a retried batch charges each once. */
  usageBatch(events: S.UsageRequest[]): Promise<S.BatchResult> {
    const body: S.BatchRequest = { events: events.map((e) => ({ ...e, idempotency_key: e.idempotency_key ?? newIdempotencyKey() })) };
    return this.request("POST", "/api/v1/usage/batch", body);
  }

  /** Prices an action without charging. */
  quote(customer: string, feature: string, quantity: number = 1): Promise<S.Quote> {
    const q = new URLSearchParams({ customer, feature, quantity: String(quantity) });
    return this.request("GET", "/api/v1/quote?" + q.toString());
  }

  /** Reserves credits for a long call. */
  createHold(req: S.HoldRequest): Promise<S.Hold> {
    const body = { ...req, idempotency_key: req.idempotency_key ?? newIdempotencyKey() };
    return this.request("POST", "/api/v1/holds", body, body.idempotency_key);
  }

  /** Charges a hold's actual usage and releases the rest. */
  captureHold(id: string, req: S.CaptureRequest): Promise<S.Hold> {
    const body = { ...req, idempotency_key: req.idempotency_key ?? newIdempotencyKey() };
    return this.request("POST", `/api/v1/holds/${encodeURIComponent(id)}/capture`, body, body.idempotency_key);
  }

  /** Ends a hold without a charge (releasing twice is harmless). */
  releaseHold(id: string): Promise<S.Hold> {
    return this.request("POST", `/api/v1/holds/${encodeURIComponent(id)}/release`, {});
  }

  /** A customer's balance. */
  balance(customer: string): Promise<S.Balance> {
    return this.request("GET", `/api/v1/customers/${encodeURIComponent(customer)}/balance`);
  }

  /** A single-use portal sign-in link (portal or admin key). */
  createPortalSession(req: S.PortalSessionRequest): Promise<S.PortalSession> {
    return this.request("POST", "/api/v1/portal-sessions", req);
  }

  /** The portal link that sells what a 402 needed (flow top_up), back to returnURL after paying. */
  topUpLink(err: TallyError, customer: string, returnURL: string): Promise<S.PortalSession> {
    if (err.type !== "insufficient_credits") throw new Error("topUpLink needs an insufficient_credits error");
    return this.createPortalSession({ customer, return_url: returnURL, flow: "top_up", required: err.required });
  }

  /** A 15-minute token for the balance widget (portal or admin key; the origin must be one the key allows). */
  createEmbedToken(req: S.EmbedTokenRequest): Promise<S.EmbedToken> {
    return this.request("POST", "/api/v1/embed-tokens", req);
  }

  private async request<T>(method: string, path: string, body?: unknown, idempotencyKey?: string): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.once<T>(method, path, payload, idempotencyKey);
      } catch (e) {
        const retry = e instanceof TallyError && (e.status === 0 || e.status >= 500 || e.type === "conflict");
        if (!retry || attempt >= this.retries) throw e;
        let wait = Math.min(this.backoffMs * 2 ** attempt, 10_000) * Math.random();
        const after = Number((e as TallyError).detail.retry_after);
        if (after > 0) wait = Math.max(wait, after * 1000);
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  private async once<T>(method: string, path: string, payload: string | undefined, idempotencyKey?: string): Promise<T> {
    const headers: Record<string, string> = { Authorization: "Bearer " + this.key, Accept: "application/json" };
    if (payload !== undefined) headers["Content-Type"] = "application/json";
    if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
    let res: Response;
    try {
      res = await this.fetch(this.base + path, { method, headers, body: payload, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (e) {
      throw new TallyError(0, { type: "network_error", message: String((e as Error)?.message ?? e) }, idempotencyKey);
    }
    const text = await res.text().catch(() => "");
    let data: Json | undefined;
    try {
      data = text ? (JSON.parse(text) as Json) : undefined;
    } catch {
      data = undefined;
    }
    if (!res.ok) {
      const detail = (data?.error as Json | undefined) ?? { type: "http_" + res.status, message: res.statusText };
      if (detail.retry_after === undefined && res.headers.get("Retry-After")) detail.retry_after = Number(res.headers.get("Retry-After"));
      throw new TallyError(res.status, detail as ErrorInfo, idempotencyKey, res.headers.get("X-Request-Id") ?? undefined);
    }
    return data as T;
  }
}
