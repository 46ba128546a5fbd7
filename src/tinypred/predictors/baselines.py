"""Baseline predictors: constant velocity and friends, a lane follower, and the intent mixture.

Every predictor reads EncodedScenes (agent frame) and returns a `Prediction` with the same layout as
the learned model: modes (N, K, T, 2), probs (N, K) and per-step NLL scales. `fit` is given the
training split: it fits what the baseline has to fit (cv_fan's probabilities) and then, for every
baseline, the per-step scales of the NLL by maximum likelihood (`evaluation.fit_scales`). Time is in
the scenes' own step `enc.dt`: a velocity fitted over steps is converted with it, never with a constant.

    cv           constant velocity: the mean observed velocity over the last `window` steps, K = 1
    ca           constant (longitudinal) acceleration: speed trend over `window` steps, never reversing
    ctrv         constant turn rate and velocity: heading trend over `window` steps
    cv_fan       K = 6 unicycle hypotheses around constant velocity (yaw rates 0, +-0.2, +-0.5 rad/s and
                 a braking one); probabilities = how often each was the best on the training split
    lane_follow  one mode per lane of the map context, at the current speed, merging onto the lane over
                 the horizon; probabilities by distance to the lane (a Gaussian of 1.75 m, half a lane)
    intent_mixture  the scene's ground-truth mixture without styles: each intent's nominal future with
                 its posterior probability. It knows the intents and their odds, not the driver's style,
                 so it is no floor: a predictor with more modes (K = 6 > M = 3) can spread them over
                 styles too and beat its minFDE@6 and NLL, as the learned model does. The floor is
                 `tinypred.predictors.bayes`
"""

from __future__ import annotations

import numpy as np

from tinypred.data.encoding import EncodedScenes
from tinypred.data.scene_config import LANE_TYPES
from tinypred.errors import TinypredError
from tinypred.evaluation.scales import fit_scales
from tinypred.geometry import advance, as_complex, as_points
from tinypred.predictors.prediction import Prediction


def _window_fit(
    values: np.ndarray, mask: np.ndarray, window: int, dt: float
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares line through the observed (mask) of the last `window` steps of values (N, H), dt s
    apart: (value at t = 0, slope per s). A sample with fewer than two observed steps gets slope 0."""
    y, w = values[:, -window:], mask[:, -window:].astype(np.float64)
    t = (np.arange(window) - (window - 1)) * dt  # the last step is t = 0
    count = w.sum(1)
    t_mean = (w @ t) / count
    y_mean = (w * y).sum(1) / count
    tc = t - t_mean[:, None]
    var = (w * tc * tc).sum(1)
    slope = np.where(var > 0, (w * tc * (y - y_mean[:, None])).sum(1) / np.where(var > 0, var, 1.0), 0.0)
    return y_mean - slope * t_mean, slope


def unicycle(
    speed: np.ndarray, yaw_rate: np.ndarray, accel: np.ndarray, heading: np.ndarray, steps: int, dt: float
) -> np.ndarray:
    """(B..., steps, 2) positions from the origin of a unicycle with constant yaw rate and acceleration,
    at t = dt, 2 dt, ...

    speed, yaw_rate, accel, heading: (B...,). Speed stops at 0 (a braking agent never backs up). Each step
    is an exact arc at the step's mean speed.
    """
    z = np.zeros(speed.shape, complex)
    out = np.empty((*speed.shape, steps), complex)
    v = speed
    for t in range(steps):
        v_next = np.maximum(v + accel * dt, 0.0)
        dist = 0.5 * (v + v_next) * dt
        kappa = np.where(dist > 1e-9, yaw_rate * dt / np.maximum(dist, 1e-9), 0.0)
        z, heading = advance(z, heading, dist, kappa)
        out[..., t] = z
        v = v_next
    return as_points(out).astype(np.float32)


class Baseline:
    """Shared fit/predict: subclasses give `_predict(enc) -> (modes, probs)` and may fit probabilities."""

    name = "baseline"
    window = 3  # observed steps that estimate the current motion

    def __init__(self, window: int | None = None) -> None:
        self.window = self.window if window is None else window
        self.scale: np.ndarray | None = None

    @staticmethod
    def applies(enc: EncodedScenes) -> bool:
        """Whether this baseline can predict these samples (every one can, but the intent mixture)."""
        return True

    def fit(self, train: EncodedScenes) -> Baseline:
        if len(train) == 0 or not train.has_future:
            raise TinypredError(
                f"fitting {self.name} needs training samples whose futures are known", arg="train"
            )
        if not self.applies(train):
            raise TinypredError(f"the {self.name} baseline needs what these samples lack", arg="baseline")
        self._fit_probs(train)
        modes, probs = self._predict(train)
        self.scale = fit_scales(modes, train.future, probs)
        return self

    def predict(self, enc: EncodedScenes) -> Prediction:
        if self.scale is None:
            raise RuntimeError(f"{self.name}: call fit(train) before predict")
        modes, probs = self._predict(enc)
        return Prediction(modes, probs, self.scale)

    def _fit_probs(self, train: EncodedScenes) -> None:
        """Nothing to fit by default."""

    def _predict(self, enc: EncodedScenes) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


def _speed_heading(enc: EncodedScenes, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean observed speed, and the heading of the mean observed velocity, over the observed steps among
    the last `window` (the last one always is)."""
    v = enc.history[:, -window:, 2:4]
    w = enc.history_mask[:, -window:]
    count = w.sum(1)
    mean = (v * w[..., None]).sum(1) / count[:, None]
    speed = (np.hypot(v[..., 0], v[..., 1]) * w).sum(1) / count
    return speed, np.arctan2(mean[:, 1], mean[:, 0])


def _single(modes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return modes[:, None], np.ones((len(modes), 1), np.float32)


class ConstantVelocity(Baseline):
    name = "cv"

    def _predict(self, enc):
        speed, heading = _speed_heading(enc, self.window)
        zero = np.zeros_like(speed)
        return _single(unicycle(speed, zero, zero, heading, enc.future.shape[1], enc.dt))


class ConstantAcceleration(Baseline):
    name = "ca"

    window = 10

    def _predict(self, enc):
        speed_steps = np.hypot(enc.history[..., 2], enc.history[..., 3])
        speed, accel = _window_fit(speed_steps, enc.history_mask, self.window, enc.dt)
        _, heading = _speed_heading(enc, 3)
        return _single(
            unicycle(
                np.maximum(speed, 0.0), np.zeros_like(speed), accel, heading, enc.future.shape[1], enc.dt
            )
        )


class CTRV(Baseline):
    name = "ctrv"

    window = 10

    def _predict(self, enc):
        # Unobserved steps are zeros: their heading 0 is the last one's, so unwrap sees no false jump.
        heading = np.unwrap(np.arctan2(enc.history[..., 4], enc.history[..., 5]), axis=1)
        heading_now, yaw_rate = _window_fit(heading, enc.history_mask, self.window, enc.dt)  # no lag
        speed, _ = _speed_heading(enc, 3)
        return _single(
            unicycle(speed, yaw_rate, np.zeros_like(speed), heading_now, enc.future.shape[1], enc.dt)
        )


class CVFan(Baseline):
    """K = 6 hypotheses around constant velocity; probabilities fitted on the training split."""

    name = "cv_fan"
    YAW_RATES = np.array([0.0, 0.2, -0.2, 0.5, -0.5, 0.0])  # rad/s
    ACCELS = np.array([0.0, 0.0, 0.0, 0.0, 0.0, -2.5])  # m/s^2: the last one brakes

    def __init__(self, window: int | None = None) -> None:
        super().__init__(window)
        self.prior = np.full(len(self.YAW_RATES), 1 / len(self.YAW_RATES))

    def _modes(self, enc):
        speed, heading = _speed_heading(enc, self.window)
        k = len(self.YAW_RATES)
        return unicycle(
            np.repeat(speed[:, None], k, 1),
            np.broadcast_to(self.YAW_RATES, (len(enc), k)),
            np.broadcast_to(self.ACCELS, (len(enc), k)),
            np.repeat(heading[:, None], k, 1),
            enc.future.shape[1],
            enc.dt,
        )

    def _fit_probs(self, train):
        # The maximum-likelihood categorical over "which hypothesis is closest at the horizon":
        # each hypothesis's share of wins on the training split (plus one, so none is impossible).
        fde = np.linalg.norm(self._modes(train)[:, :, -1] - train.future[:, None, -1], axis=-1)
        wins = np.bincount(fde.argmin(1), minlength=len(self.prior)) + 1.0
        self.prior = wins / wins.sum()

    def _predict(self, enc):
        return self._modes(enc), np.broadcast_to(self.prior, (len(enc), len(self.prior))).astype(np.float32)


def _fill_absent(modes: np.ndarray, probs: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Absent modes (probability 0) become copies of the most probable one, so they cannot score hits."""
    best = np.take_along_axis(modes, probs.argmax(1)[:, None, None, None], 1)
    return np.where(present[:, :, None, None], modes, best)


class LaneFollow(Baseline):
    """Follow each lane of the map context at the current speed."""

    name = "lane_follow"
    SIGMA = 1.75  # m: how fast a lane's probability falls with its distance from the agent

    def _predict(self, enc):
        n, n_lanes, p, _ = enc.lanes.shape
        steps = enc.future.shape[1]
        lane = as_complex(enc.lanes.astype(np.float64))  # (N, L, P)
        seg = np.diff(lane, axis=-1)  # (N, L, P-1)
        seg_len = np.maximum(np.abs(seg), 1e-9)
        # Project the agent (the origin) onto every segment; keep the nearest point of each lane.
        u = np.clip((-lane[..., :-1] * np.conj(seg)).real / seg_len**2, 0.0, 1.0)
        foot = lane[..., :-1] + u * seg
        nearest = np.abs(foot).argmin(-1)
        cum = np.concatenate(
            [np.zeros((n, n_lanes, 1)), np.cumsum(seg_len, -1)], -1
        )  # arc length of each point
        take = lambda a, i: np.take_along_axis(a, i[..., None], -1)[..., 0]  # noqa: E731
        s0 = take(cum[..., :-1], nearest) + take(u, nearest) * take(seg_len, nearest)
        offset = -take(foot, nearest)  # from the lane to the agent; it fades out over the horizon
        speed, _ = _speed_heading(enc, 3)
        t = np.arange(1, steps + 1) * enc.dt
        s = s0[..., None] + speed[:, None, None] * t  # (N, L, T)
        # Position at arc length s: within a segment by interpolation, past the end along the last one.
        j = np.clip((s[..., None] >= cum[..., None, 1:-1]).sum(-1), 0, p - 2)
        along = (s - np.take_along_axis(cum, j, -1)) / np.take_along_axis(seg_len, j, -1)
        pos = np.take_along_axis(lane, j, -1) + along * np.take_along_axis(seg, j, -1)
        pos += offset[..., None] * (1 - t / t[-1])
        follow = enc.lane_mask & (enc.lane_type == LANE_TYPES.index("lane"))
        weight = np.where(follow, np.exp(-0.5 * (np.abs(offset) / self.SIGMA) ** 2), 0.0)
        lost = ~follow.any(1)  # no lane to follow (a pedestrian, a car park): constant velocity alone
        weight[lost, 0] = 1.0
        probs = (weight / weight.sum(1, keepdims=True)).astype(np.float32)
        modes = as_points(pos).astype(np.float32)
        if lost.any():
            modes[lost, 0] = ConstantVelocity()._predict(enc.subset(lost))[0][:, 0]
        return _fill_absent(modes, probs, probs > 0), probs


class IntentMixture(Baseline):
    """The ground-truth mixture of each scene: the noise-free future of every intent, with its probability.
    Only synthetic scenes have one."""

    name = "intent_mixture"

    @staticmethod
    def applies(enc: EncodedScenes) -> bool:
        return enc.has_mixture

    def _predict(self, enc):
        probs = enc.alt_probs.astype(np.float32)
        return _fill_absent(enc.alt_futures, probs, enc.alt_mask), probs


BASELINES = {
    cls.name: cls for cls in (ConstantVelocity, ConstantAcceleration, CTRV, CVFan, LaneFollow, IntentMixture)
}


def fit_all(train: EncodedScenes, names: tuple[str, ...] | None = None) -> dict[str, Baseline]:
    """The baselines in `names` (default: every one that applies to these samples; the intent mixture
    needs a ground-truth mixture), fitted on the training split."""
    if names is None:
        names = tuple(name for name, cls in BASELINES.items() if cls.applies(train))
    unknown = [name for name in names if name not in BASELINES]
    if unknown:
        raise TinypredError(
            f"unknown baseline {unknown[0]!r}; expected one of {', '.join(BASELINES)}", arg="baseline"
        )
    return {name: BASELINES[name]().fit(train) for name in names}
