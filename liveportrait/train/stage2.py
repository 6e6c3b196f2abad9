"""Stage 2: the stitching and eye/lip retargeting MLPs, with F, M, W and G frozen.

For a source frame s (with a same-clip driving frame d and a frame c of another identity):

- stitching: c's motion applied to s's canonical keypoints gives x_d; the stitching MLP offsets it
  (x_st = x_d + delta); the rendered picture must equal the source outside the (dilated) face
  region, where the animation is pasted back, with a small-delta term;
- eyes: the eye MLP, given s's keypoints, s's eye-open ratios and d's, moves x_s; the eye region
  of the render (where s's eyes are) must look like d's eye region, with a small-delta term;
- lips: the same with the lip ratio and the lip region.

The three renders go through W and G in one batch; gradients reach only S.
"""

from __future__ import annotations

import torch
from torch import nn

from ..motion import keypoints as kpm
from ..networks import LivePortraitNetworks
from . import distributed as dist_utils
from . import landmarks as lmk
from . import losses as L
from .backbones import build_perceptual
from .data import PairDataset
from .engine import Trainer, load_networks


class Stage2Model(nn.Module):
    """The retargeting module S with the stage-2 forward; the frozen base is held, not registered,
    so DistributedDataParallel only sees S."""

    def __init__(self, nets: LivePortraitNetworks, tasks: tuple[str, ...], reconstruction: bool):
        super().__init__()
        self.S = nets.S
        self.tasks = tasks
        self.reconstruction = reconstruction
        object.__setattr__(self, "_base", nets)

    def forward(self, b: dict) -> dict:
        nets = self._base
        num_kp = nets.config.motion.num_kp
        with torch.no_grad():
            bs = b["source"].shape[0]
            raw = nets.M(torch.cat([b["source"], b["cross"]], dim=0))
            m_s = kpm.kp_info(raw.map(lambda v: v[:bs]), num_kp)
            m_c = kpm.kp_info(raw.map(lambda v: v[bs:]), num_kp)
            R_s = kpm.rotation_matrix(m_s["pitch"], m_s["yaw"], m_s["roll"])
            R_c = kpm.rotation_matrix(m_c["pitch"], m_c["yaw"], m_c["roll"])
            x_s = kpm.transform_keypoints(m_s["kp"], R_s, m_s["exp"], m_s["scale"], m_s["t"]).float()
            # the cross-identity frame's motion on the source's canonical keypoints
            x_c = kpm.transform_keypoints(m_s["kp"], R_c, m_c["exp"], m_c["scale"], m_c["t"]).float()
            f_s = nets.F(b["source"])
        out: dict[str, torch.Tensor] = {}
        kps = []
        with torch.autocast(b["source"].device.type, enabled=False):  # S runs in float32, as at inference
            if "stitching" in self.tasks:
                delta = self.S.stitch_delta(x_s, x_c)
                kps.append(kpm.apply_stitching(x_c, delta))
                out["stitching_delta"] = delta
            if "eye" in self.tasks:
                # source left and right eye, then the target (the driving's first eye, as at inference)
                ratio = torch.cat([b["source_eye"], b["driving_eye"][:, :1]], dim=1)
                out["eye_delta"] = self.S.eye_delta(x_s, ratio)
                kps.append(x_s + out["eye_delta"])
            if "lip" in self.tasks:
                ratio = torch.cat([b["source_lip"], b["driving_lip"]], dim=1)
                out["lip_delta"] = self.S.lip_delta(x_s, ratio)
                kps.append(x_s + out["lip_delta"])
        if self.reconstruction:
            kps.append(x_s)
        n = len(kps)
        # W and G are in eval mode (no batch statistics): one batched render equals separate ones
        warped = nets.W(f_s.repeat(n, 1, 1, 1, 1), kp_driving=torch.cat(kps, dim=0), kp_source=x_s.repeat(n, 1, 1))
        renders = nets.G(warped.out).float().chunk(n, dim=0)
        for name, img in zip(self.tasks, renders):
            out[f"{name}_pred"] = img
        if self.reconstruction:
            out["reconstruction"] = renders[-1].detach()
        return out


class Stage2Trainer(Trainer):
    stage = "stage2"

    def build(self) -> None:
        c, s2 = self.cfg, self.cfg.stage2
        self.nets = load_networks(c, c.base_weights).to(self.device).eval()
        for p in self.nets.parameters():
            p.requires_grad_(False)
        tasks = tuple(t for t, on in (("stitching", s2.train_stitching), ("eye", s2.train_eye),
                                      ("lip", s2.train_lip)) if on)
        for t in tasks:
            for p in getattr(self.nets.S, t).parameters():
                p.requires_grad_(True)
        self.nets.S.train()
        self.tasks = tasks
        self.model = Stage2Model(self.nets, tasks, "stitching" in tasks and s2.stitching_target == "reconstruction")
        self.wrapped = dist_utils.wrap(self.model, self.info)
        self.perceptual = None
        if s2.region_perceptual > 0:
            self.perceptual = L.PerceptualLoss(build_perceptual(c.perceptual, c.seed),
                                               c.stage1.perceptual_layer_weights, [1.0]).to(self.device)
        self.opt = self.make_optimizer("retargeting", self.model.parameters(), c.lr)
        self.scaler = self.make_scaler()

    def networks(self) -> LivePortraitNetworks:
        return self.nets

    def modules(self) -> dict[str, nn.Module]:
        return {"retargeting": self.nets.S}

    def trained(self) -> list[nn.Module]:
        return [self.nets.S]

    def optimizers(self) -> dict:
        return {"retargeting": self.opt}

    def scalers(self) -> dict:
        return {"retargeting": self.scaler}

    def dataset(self) -> PairDataset:
        c = self.cfg
        ds = PairDataset(c.data.root, self.input_size, self.output_size, "stage2", c.seed, c.data.max_frame_gap,
                         c.stage2.face_mask_dilation)
        if "stitching" in self.tasks and ds.num_identities < c.data.min_identities:
            self._say(f"warning: {ds.num_identities} identity(ies) in {c.data.root}: stitching pairs cannot all be "
                      "cross-identity")
        return ds

    def losses(self, out: dict, b: dict) -> dict[str, torch.Tensor]:
        losses: dict[str, torch.Tensor] = {}
        if "stitching" in self.tasks:
            target = out["reconstruction"] if "reconstruction" in out else b["source_target"]
            losses["stitching"] = L.masked_l1(out["stitching_pred"], target, 1 - b["source_mask"])
            losses["stitching_delta"] = out["stitching_delta"].abs().mean()
        src_boxes = lmk.region_boxes(b["source_lm"], b["source_lm_valid"])
        drv_boxes = lmk.region_boxes(b["driving_lm"], b["driving_lm_valid"])
        for region in ("eye", "lip"):
            if region not in self.tasks:
                continue
            size = lmk.patch_size(region, out[f"{region}_pred"].shape[-1])
            mine = lmk.crop_patches(out[f"{region}_pred"], src_boxes[region], size)
            theirs = lmk.crop_patches(b["driving_target"], drv_boxes[region], size)
            losses[region] = (mine - theirs).abs().mean()
            if self.perceptual is not None:
                losses[f"{region}_perceptual"] = self.perceptual(mine, theirs)
            losses[f"{region}_delta"] = out[f"{region}_delta"].abs().mean()
        return losses

    def weights(self) -> dict[str, float]:
        s2 = self.cfg.stage2
        return {"stitching": s2.stitching, "stitching_delta": s2.stitching_delta, "eye": s2.eye,
                "eye_delta": s2.eye_delta, "lip": s2.lip, "lip_delta": s2.lip_delta,
                "eye_perceptual": s2.region_perceptual, "lip_perceptual": s2.region_perceptual}

    def train_step(self, batches: list[dict], step: int) -> dict[str, float]:
        n = len(batches)
        weights = self.weights()
        sums: dict[str, float] = {}
        self.opt.zero_grad(set_to_none=True)
        for micro, b in enumerate(batches):
            with dist_utils.no_sync(self.wrapped, micro < n - 1):
                with self.autocast():
                    out = self.wrapped(b)
                losses = self.losses(out, b)
                total = sum(weights[k] * v for k, v in losses.items())
                self.scaler.scale(total / n).backward()
            for k, v in losses.items():
                sums[f"loss/{k}"] = sums.get(f"loss/{k}", 0.0) + v.detach().float() / n
            sums["loss/total"] = sums.get("loss/total", 0.0) + total.detach().float() / n
        norm = self.optimizer_step(self.opt, self.scaler)
        if self.cfg.grad_clip > 0:
            sums["grad_norm/retargeting"] = norm
        first = next(iter(self.tasks))
        self.preview = {f"source|{first}": torch.cat([batches[-1]["source_target"][0].float(),
                                                     out[f"{first}_pred"][0].detach().float()], dim=2)}
        return sums
