"""ComfyUI's two workflow formats: the API format (what the server runs) and the UI format (what the editor
saves: nodes with widget values in input order, and a list of links). ``api_to_ui`` wrote the shipped
``*.ui.json`` files from the ``*.api.json`` ones (``python tests/comfyui/workflow_ui.py``); ``ui_to_api`` reads a
UI file back the way the editor exports it for the server, so a test can check that both files say the same."""

from __future__ import annotations

import json
import sys
from pathlib import Path

WIDGET_KINDS = ("INT", "FLOAT", "STRING", "BOOLEAN")
SEED_NAMES = ("seed", "noise_seed")  # the editor adds a "control after generate" value after these


def _inputs(cls) -> list[tuple[str, object]]:
    spec = cls.INPUT_TYPES()
    return [(name, declared[0]) for group in ("required", "optional") for name, declared in spec.get(group, {}).items()]


def _is_widget(kind) -> bool:
    return isinstance(kind, list) or kind in WIDGET_KINDS


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)


def _default(cls, name):
    spec = cls.INPUT_TYPES()
    for group in ("required", "optional"):
        if name in spec.get(group, {}):
            declared = spec[group][name]
            opts = declared[1] if len(declared) > 1 else {}
            if "default" in opts:
                return opts["default"]
            return declared[0][0] if isinstance(declared[0], list) and declared[0] else None
    return None


def api_to_ui(api: dict, classes: dict) -> dict:
    nodes, links = [], []
    ids = {node_id: int(node_id) for node_id in api}
    outgoing: dict[tuple[str, int], list[int]] = {}
    for order, (node_id, node) in enumerate(api.items()):
        cls = classes[node["class_type"]]
        ui_inputs, widgets = [], []
        for name, kind in _inputs(cls):
            value = node["inputs"].get(name)
            if _is_link(value):
                link_id = len(links) + 1
                src_cls = classes[api[value[0]]["class_type"]]
                link_type = src_cls.RETURN_TYPES[value[1]]
                links.append([link_id, ids[value[0]], value[1], ids[node_id], len(ui_inputs), link_type])
                outgoing.setdefault((value[0], value[1]), []).append(link_id)
                entry = {"name": name, "type": link_type, "link": link_id}
                if _is_widget(kind):
                    entry["widget"] = {"name": name}
                ui_inputs.append(entry)
            elif not _is_widget(kind):
                ui_inputs.append({"name": name, "type": kind, "link": None})
            if _is_widget(kind):
                widgets.append(value if value is not None and not _is_link(value) else _default(cls, name))
                if name in SEED_NAMES:
                    widgets.append("fixed")
        nodes.append({"id": ids[node_id], "type": node["class_type"], "pos": [40 + 360 * (order % 4),
                                                                             60 + 420 * (order // 4)],
                      "size": [320, 120], "flags": {}, "order": order, "mode": 0, "inputs": ui_inputs,
                      "outputs": [], "properties": {"Node name for S&R": node["class_type"]},
                      "widgets_values": widgets, "title": node.get("_meta", {}).get("title", node["class_type"])})
    for node, (node_id, api_node) in zip(nodes, api.items()):
        cls = classes[api_node["class_type"]]
        names = getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)
        node["outputs"] = [{"name": names[i], "type": t, "links": outgoing.get((node_id, i), []), "slot_index": i}
                           for i, t in enumerate(cls.RETURN_TYPES)]
    return {"last_node_id": max(ids.values()), "last_link_id": len(links), "nodes": nodes, "links": links,
            "groups": [], "config": {}, "extra": {}, "version": 0.4}


def ui_to_api(ui: dict, classes: dict) -> dict:
    link_source = {link[0]: (str(link[1]), link[2]) for link in ui["links"]}
    api = {}
    for node in sorted(ui["nodes"], key=lambda n: n["id"]):
        cls = classes[node["type"]]
        linked = {i["name"]: i["link"] for i in node["inputs"] if i.get("link") is not None}
        values = list(node["widgets_values"])
        inputs = {}
        for name, kind in _inputs(cls):
            if _is_widget(kind):
                value = values.pop(0)
                if name in SEED_NAMES:
                    values.pop(0)
                if name not in linked:
                    inputs[name] = value
            if name in linked:
                src, slot = link_source[linked[name]]
                inputs[name] = [src, slot]
        assert not values, f"node {node['id']}: widget values left over: {values}"
        api[str(node["id"])] = {"class_type": node["type"], "_meta": {"title": node["title"]}, "inputs": inputs}
    return api


def comparable(api: dict, classes: dict) -> dict:
    """An API workflow with every omitted widget at its default and titles dropped, for comparing."""
    out = {}
    for node_id, node in api.items():
        cls = classes[node["class_type"]]
        inputs = dict(node["inputs"])
        for name, kind in _inputs(cls):
            if _is_widget(kind) and name not in inputs:
                inputs[name] = _default(cls, name)
        out[node_id] = {"class_type": node["class_type"], "inputs": inputs}
    return out


def main() -> None:  # pragma: no cover - writes the shipped UI files
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.comfyui.conftest import CoreStandIns, StandIns, load_pack

    pack = load_pack()
    state = StandIns(Path(tempfile.mkdtemp()))
    classes = {**pack.NODE_CLASS_MAPPINGS, **CoreStandIns(state).classes()}
    folder = Path(__file__).resolve().parents[2] / "comfyui" / "workflows"
    for path in sorted(folder.glob("*.api.json")):
        ui = api_to_ui(json.loads(path.read_text()), classes)
        target = path.with_name(path.name.replace(".api.json", ".ui.json"))
        target.write_text(json.dumps(ui, indent=1) + "\n")
        print(target)


if __name__ == "__main__":
    main()
