"""Stage 1: the appearance extractor F, motion extractor M, warping W and generator G from scratch.

For a source frame s and a driving frame d of the same clip, M gives both frames' motion; the
driving keypoints are the *source's* canonical keypoints moved by the *driving's* pose,
expression, scale and translation (x_d = s_d (x_c,s R_d + delta_d) + t_d), and G(W(F(s), x_d, x_s))
must reproduce d.  Losses (weights in ``Stage1Config``):

- cascaded perceptual: whole image over an image pyramid, then face, eye and lip patches
  (placed by the driving frame's landmarks);
- cascaded GAN: least-squares, one multi-scale patch discriminator per region, feature matching;
- equivariance: keypoints of a randomly warped driving frame, warped back, match the originals;
- keypoint prior, head pose (against the prepared pose targets), deformation prior;
- landmark-guided wing loss on a subset of keypoints (source and driving);
- optional identity loss (face patches through the user's face-recognition network).
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..motion import keypoints as kpm
from ..networks import LivePortraitNetworks, MotionOutput
from . import distributed as dist_utils
from . import landmarks as lmk
from . import losses as L
from .backbones import build_identity, build_perceptual
from .data import PairDataset
from .discriminator import CascadedDiscriminator
from .engine import Trainer, load_networks
from .spectral import power_iteration_


def _motion(raw: MotionOutput, num_kp: int) -> dict[str, torch.Tensor]:
    info = kpm.kp_info(raw, num_kp)
    info["R"] = kpm.rotation_matrix(info["pitch"], info["yaw"], info["roll"])
    info["angles"] = torch.cat([info["pitch"], info["yaw"], info["roll"]], dim=1)
    return info


def _split(info: dict[str, torch.Tensor], n: int) -> list[dict[str, torch.Tensor]]:
    parts = [dict() for _ in range(n)]
    for k, v in info.items():
        for p, chunk in zip(parts, v.chunk(n, dim=0)):
            p[k] = chunk
    return parts


class Stage1Model(nn.Module):
    """F, M, W and G with the stage-1 forward: what DistributedDataParallel wraps."""

    def __init__(self, nets: LivePortraitNetworks):
        super().__init__()
        self.F, self.M, self.W, self.G = nets.F, nets.M, nets.W, nets.G
        self.num_kp = nets.config.motion.num_kp

    def forward(self, source: torch.Tensor, driving: torch.Tensor, driving_warped: torch.Tensor) -> dict:
        # M has no batch statistics, so one call on the three batches equals three calls
        raw = self.M(torch.cat([source, driving, driving_warped], dim=0))
        m_s, m_d, m_w = _split(_motion(raw, self.num_kp), 3)
        kp_c = m_s["kp"]
        x_s = kpm.transform_keypoints(kp_c, m_s["R"], m_s["exp"], m_s["scale"], m_s["t"])
        x_d = kpm.transform_keypoints(kp_c, m_d["R"], m_d["exp"], m_d["scale"], m_d["t"])
        # equivariance compares each frame with its own canonical keypoints
        x_d_own = kpm.transform_keypoints(m_d["kp"], m_d["R"], m_d["exp"], m_d["scale"], m_d["t"])
        x_w_own = kpm.transform_keypoints(m_w["kp"], m_w["R"], m_w["exp"], m_w["scale"], m_w["t"])
        f_s = self.F(source)
        warped = self.W(f_s, kp_driving=x_d, kp_source=x_s)
        pred = self.G(warped.out)
        return {"pred": pred, "x_s": x_s, "x_d": x_d, "x_d_own": x_d_own, "x_w_own": x_w_own,
                "exp_d": m_d["exp"], "angles_s": m_s["angles"], "angles_d": m_d["angles"]}


@contextlib.contextmanager
def frozen(module: nn.Module):
    """Parameters without gradient for a while (the discriminator during the generator's step)."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p, f in flags:
            p.requires_grad_(f)


class Stage1Trainer(Trainer):
    stage = "stage1"

    def build(self) -> None:
        c, s1 = self.cfg, self.cfg.stage1
        self.nets = load_networks(c, c.init_weights).to(self.device)
        self.nets.eval()
        for m in (self.nets.F, self.nets.M, self.nets.W, self.nets.G):
            m.train()
        for p in self.nets.S.parameters():
            p.requires_grad_(False)
        model = Stage1Model(self.nets)
        if c.sync_batchnorm and self.info.distributed:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            self.nets.appearance_feature_extractor = model.F
            self.nets.motion_extractor = model.M
            self.nets.warping_module = model.W
            self.nets.spade_generator = model.G
        self.model = model
        self.gen = dist_utils.wrap(model, self.info)

        self.regions_perceptual = {r: w for r, w in (("face", s1.perceptual_face), ("eye", s1.perceptual_eye),
                                                     ("lip", s1.perceptual_lip)) if w > 0}
        self.perceptual = None
        if s1.perceptual > 0 or self.regions_perceptual:
            self.perceptual = L.PerceptualLoss(build_perceptual(c.perceptual, c.seed), s1.perceptual_layer_weights,
                                               s1.perceptual_scales).to(self.device)
        self.identity = build_identity(c.identity, c.seed).to(self.device) if s1.identity > 0 else None
        pairs = torch.as_tensor(s1.landmark_pairs, dtype=torch.long).reshape(-1, 2)
        num_kp = self.model_config.motion.num_kp
        if len(pairs) and (pairs[:, 0].max() >= num_kp or pairs[:, 1].max() >= lmk.NUM_LANDMARKS or pairs.min() < 0):
            from ..errors import InputError

            raise InputError(f"stage1.landmark_pairs: keypoint indices must be < {num_kp} and landmark indices "
                             f"< {lmk.NUM_LANDMARKS}")
        self.kp_index, self.lm_index = pairs[:, 0].to(self.device), pairs[:, 1].to(self.device)

        self.use_gan = (s1.gan > 0 or s1.feature_matching > 0) and bool(s1.gan_regions)
        self.disc = self.disc_raw = None
        if self.use_gan:
            torch.manual_seed(c.seed + 1)
            self.disc_raw = CascadedDiscriminator(c.discriminator, s1.gan_regions).to(self.device).train()
            self.disc = dist_utils.wrap(self.disc_raw, self.info)

        self.opt_g = self.make_optimizer("generator", model.parameters(), c.lr)
        self.scaler_g = self.make_scaler()
        if self.use_gan:
            self.opt_d = self.make_optimizer("discriminator", self.disc_raw.parameters(), s1.lr_discriminator)
            self.scaler_d = self.make_scaler()

    # -- bookkeeping ---------------------------------------------------------------------------
    def networks(self) -> LivePortraitNetworks:
        return self.nets

    def modules(self) -> dict[str, nn.Module]:
        out = {"networks": self.nets}
        if self.use_gan:
            out["discriminator"] = self.disc_raw
        return out

    def trained(self) -> list[nn.Module]:
        return [self.model] + ([self.disc_raw] if self.use_gan else [])

    def optimizers(self) -> dict:
        return {"generator": self.opt_g, **({"discriminator": self.opt_d} if self.use_gan else {})}

    def scalers(self) -> dict:
        return {"generator": self.scaler_g, **({"discriminator": self.scaler_d} if self.use_gan else {})}

    def dataset(self) -> PairDataset:
        c = self.cfg
        return PairDataset(c.data.root, self.input_size, self.output_size, "stage1", c.seed, c.data.max_frame_gap)

    # -- losses --------------------------------------------------------------------------------
    def generator_losses(self, out: dict, b: dict, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        s1 = self.cfg.stage1
        pred, target = out["pred"].float(), b["driving_target"]
        boxes = lmk.region_boxes(b["driving_lm"], b["driving_lm_valid"])
        losses: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            losses["rec_l1"] = (pred - target).abs().mean()
        if s1.l1 > 0:
            losses["l1"] = (pred - target).abs().mean()
        if self.perceptual is not None:
            if s1.perceptual > 0:
                losses["perceptual"] = self.perceptual(pred, target)
            patches_p = lmk.region_patches(pred, boxes, self.regions_perceptual)
            patches_t = lmk.region_patches(target, boxes, self.regions_perceptual)
            for r in self.regions_perceptual:
                losses[f"perceptual_{r}"] = self.perceptual(patches_p[r], patches_t[r], scales=[1.0])
        if self.use_gan:
            fake = lmk.region_patches(pred, boxes, s1.gan_regions)
            real = lmk.region_patches(target, boxes, s1.gan_regions)
            with frozen(self.disc_raw):
                d_fake = self.disc_raw(fake)
                with torch.no_grad():
                    d_real = self.disc_raw(real) if s1.feature_matching > 0 else None
            n = len(s1.gan_regions)
            if s1.gan > 0:
                losses["gan"] = sum(L.lsgan_generator_loss(d_fake[r]) for r in s1.gan_regions) / n
            if s1.feature_matching > 0:
                losses["feature_matching"] = sum(L.feature_matching_loss(d_real[r], d_fake[r])
                                                 for r in s1.gan_regions) / n
        if s1.equivariance > 0:
            losses["equivariance"] = L.equivariance_loss(out["x_d_own"], out["x_w_own"], theta)
        if s1.keypoint_prior > 0:
            losses["keypoint_prior"] = L.keypoint_prior_loss(out["x_d"], s1.keypoint_prior_distance,
                                                             s1.keypoint_prior_depth)
        if s1.head_pose > 0:
            losses["head_pose"] = 0.5 * (
                L.head_pose_loss(out["angles_s"], b["source_pose"], b["source_pose_valid"])
                + L.head_pose_loss(out["angles_d"], b["driving_pose"], b["driving_pose_valid"]))
        if s1.deformation_prior > 0:
            losses["deformation_prior"] = L.deformation_prior_loss(out["exp_d"])
        if s1.landmark > 0 and len(self.kp_index):
            wl = lambda x, lm, valid: L.wing_loss(x[:, self.kp_index, :2], lm[:, self.lm_index], s1.wing_width,  # noqa: E731
                                                  s1.wing_curvature, valid)
            losses["landmark"] = 0.5 * (wl(out["x_s"], b["source_lm"], b["source_lm_valid"])
                                        + wl(out["x_d"], b["driving_lm"], b["driving_lm_valid"]))
        if self.identity is not None:
            face_p = lmk.crop_patches(pred, boxes["face"], lmk.patch_size("face", pred.shape[-1]))
            face_t = lmk.crop_patches(target, boxes["face"], lmk.patch_size("face", pred.shape[-1]))
            losses["identity"] = L.identity_loss(self.identity, face_p, face_t)
        return losses

    def weights(self) -> dict[str, float]:
        s1 = self.cfg.stage1
        w = {"l1": s1.l1, "perceptual": s1.perceptual, "gan": s1.gan, "feature_matching": s1.feature_matching,
             "equivariance": s1.equivariance, "keypoint_prior": s1.keypoint_prior, "head_pose": s1.head_pose,
             "deformation_prior": s1.deformation_prior, "landmark": s1.landmark, "identity": s1.identity}
        w.update({f"perceptual_{r}": v for r, v in self.regions_perceptual.items()})
        return w

    # -- one optimiser step --------------------------------------------------------------------
    def train_step(self, batches: list[dict], step: int) -> dict[str, float]:
        c = self.cfg
        n = len(batches)
        weights = self.weights()
        sums: dict[str, float] = {}
        fakes = []
        self.opt_g.zero_grad(set_to_none=True)
        for micro, b in enumerate(batches):
            g = self.step_generator(step, micro)
            theta = L.random_affine(b["driving"].shape[0], c.stage1.equivariance_sigma, g).to(self.device)
            driving_warped = L.warp_affine(b["driving"], theta)
            power_iteration_(self.nets.G)
            with dist_utils.no_sync(self.gen, micro < n - 1):
                with self.autocast():  # the losses cast what they compare to float32
                    out = self.gen(b["source"], b["driving"], driving_warped)
                    losses = self.generator_losses(out, b, theta)
                total = sum(weights[k] * v for k, v in losses.items() if k in weights)
                self.scaler_g.scale(total / n).backward()
            for k, v in losses.items():  # tensors: no device sync until the loop logs them
                name = f"loss/{k}" if k in weights else k
                sums[name] = sums.get(name, 0.0) + v.detach().float() / n
            sums["loss/total"] = sums.get("loss/total", 0.0) + total.detach().float() / n
            fakes.append(out["pred"].detach())
        grad_norm = self.optimizer_step(self.opt_g, self.scaler_g)
        if c.grad_clip > 0:
            sums["grad_norm/generator"] = grad_norm

        if self.use_gan:
            self.opt_d.zero_grad(set_to_none=True)
            for micro, (b, fake) in enumerate(zip(batches, fakes)):
                boxes = lmk.region_boxes(b["driving_lm"], b["driving_lm_valid"])
                real_p = lmk.region_patches(b["driving_target"], boxes, c.stage1.gan_regions)
                fake_p = lmk.region_patches(fake.float(), boxes, c.stage1.gan_regions)
                both = {r: torch.cat([real_p[r], fake_p[r]], dim=0) for r in c.stage1.gan_regions}
                with dist_utils.no_sync(self.disc, micro < n - 1):
                    with self.autocast():
                        outs = self.disc(both)
                    loss_d = 0.0
                    for r in c.stage1.gan_regions:
                        real_o = [([f.chunk(2)[0] for f in fs], lg.chunk(2)[0]) for fs, lg in outs[r]]
                        fake_o = [([f.chunk(2)[1] for f in fs], lg.chunk(2)[1]) for fs, lg in outs[r]]
                        loss_d = loss_d + L.lsgan_discriminator_loss(real_o, fake_o)
                    loss_d = loss_d / len(c.stage1.gan_regions)
                    self.scaler_d.scale(loss_d / n).backward()
                sums["loss/discriminator"] = sums.get("loss/discriminator", 0.0) + loss_d.detach().float() / n
            self.optimizer_step(self.opt_d, self.scaler_d)

        last, fake = batches[-1], fakes[-1]
        self.preview = {"source|driving|prediction": torch.cat(
            [torch.nn.functional.interpolate(last["source"][:1].float(), size=fake.shape[-2:], mode="bilinear",
                                             align_corners=False)[0], last["driving_target"][0].float(),
             fake[0].float()], dim=2)}
        return sums
