"""Theory stage: what the theory predicts for SGD along parameter symmetries (THEORY §4-§7).

Modules, in the order they build on each other:

* ``_spectrum`` -- exact spectrum A = Σ a_i P_i of a generator and the drift terms s_i, ‖P_iθ‖²;
* ``_noise`` -- hyper-parameter constraints, the noise matrix Σ(θ) (or the discrete M_S), exact θ;
* ``_root`` -- the certified root λ* of a balance function;
* ``_dynamics`` -- the drift of every charge, per step and in continuous time (E10)-(E12);
* ``_equilibrium`` -- the equilibrium along one generator, ``noise_equilibrium`` (E13)-(E18);
* ``_gradient_flow`` -- Φ(θ₀), the limit of gradient flow on the population loss, ``gradient_flow_limit``;
* ``_joint`` -- the joint equilibrium of commuting generators, ``joint_equilibrium``;
* ``_two_layer`` -- the GL(d) closed form for two-layer linear nets (E20)-(E21);
* ``_predict`` -- ``predict_equilibrium``, the one dispatcher that picks among the three above;
* ``_sharpness`` -- the Hessian trace along an orbit and at the equilibrium (E19);
* ``_population`` -- L = E ℓ at a point: ∇L, H, Σ and ∇Tr(HΛ) (exact polynomial, cone cubature
  or data nodes);
* ``_noether_flow`` -- ``noether_flow``, the slow flow (E22) on the minimum manifold and its
  stationary state (fixed point, steady rotation, divergence);
* ``_local`` -- the (E22) drift along flat directions no global symmetry explains (local
  symmetries of ReLU units), which makes the dispatcher refuse per-generator balance.
"""
