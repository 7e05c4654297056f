/**
 * Karcher mean (Riemannian centre of mass on the unit sphere, as mergekit's
 * karcher): u_k = θ_k/‖θ_k‖, equal weights α_k = 1/K over the models with
 * ‖θ_k‖ > tol; from u = normalised Σ α u_k iterate
 *   T = Σ α_k Ω_k/sin Ω_k (u_k − cos Ω_k u), cos Ω_k = ⟨u, u_k⟩ (terms with Ω_k < tol skipped),
 *   u ← cos‖T‖ u + sin‖T‖ T/‖T‖, renormalised, until ‖T‖ < tol or max_iter;
 * θ = (Σ_k ‖θ_k‖/K) u. Every vector stays in the span of the θ_k, so the iteration
 * runs on coefficient vectors with the Gram matrix (./gram.ts), in f64.
 */
import { WHOLE, dot, grams, lincomb, norm, type Gram } from './gram.js';
import { param, rangeCheck, type MethodDescriptor } from './types.js';

export function karcherCoefficients(g: Gram, maxIter: number, tol: number): number[] {
  const k = g.k;
  const n = Array.from({ length: k }, (_, q) => Math.sqrt(Math.max(0, g.at(q, q))));
  const alphas = n.map(() => 1 / k);
  const unit = (q: number) => n.map((_, r) => (r === q && n[q]! > 0 ? 1 / n[q]! : 0));
  const valid = n.map((x, q) => (x > tol ? q : -1)).filter((q) => q >= 0);
  if (valid.length === 0) return n.map(() => 0);
  const asum = valid.reduce((a, q) => a + alphas[q]!, 0);
  const na = new Map(valid.map((q) => [q, alphas[q]! / asum]));
  let u = n.map(() => 0);
  for (const q of valid) u = u.map((x, r) => x + na.get(q)! * unit(q)[r]!);
  const nu = norm(g, u);
  u = nu < tol ? unit(valid[0]!) : u.map((x) => x / nu);
  for (let it = 0; it < maxIter; it += 1) {
    let tan = n.map(() => 0);
    for (const q of valid) {
      const uq = unit(q);
      const c = Math.min(1, Math.max(-1, dot(g, u, uq)));
      const omega = Math.acos(c);
      if (omega < tol) continue;
      const f = (na.get(q)! * omega) / Math.sin(omega);
      tan = tan.map((x, r) => x + f * (uq[r]! - c * u[r]!));
    }
    const nt = norm(g, tan);
    if (nt < tol) break;
    u = u.map((x, r) => Math.cos(nt) * x + (Math.sin(nt) * tan[r]!) / nt);
    const un = norm(g, u);
    if (un > tol) u = u.map((x) => x / un);
  }
  const s = alphas.reduce((a, al, q) => a + al * n[q]!, 0);
  return u.map((x) => s * x);
}

export const karcher: MethodDescriptor = {
  name: 'karcher',
  formula: 'θ = (mean ‖θ_k‖) · the Karcher mean of the unit θ_k on the sphere (fixed-point iteration)',
  reference: 'https://en.wikipedia.org/wiki/Karcher_mean',
  base: 'unused',
  models: { min: 1 },
  global: {
    max_iter: { kind: 'number', default: 10, help: 'iterations at most', check: (v) => (Number.isInteger(v) && Number(v) >= 0 ? undefined : `must be a non-negative integer, got ${String(v)}`) },
    tol: { kind: 'number', default: 1e-5, help: 'convergence tolerance', check: rangeCheck(0, 1) },
  },
  perModel: {},
  request: async (t, inputs, out) => {
    if (inputs.models.length === 1) return lincomb(t, inputs.models, undefined, WHOLE, [[1]], out);
    const [g] = await grams(t, inputs.models, undefined, WHOLE, inputs.threads);
    return lincomb(t, inputs.models, undefined, WHOLE, [karcherCoefficients(g!, Number(param(t, 'max_iter')), Number(param(t, 'tol')))], out);
  },
};
