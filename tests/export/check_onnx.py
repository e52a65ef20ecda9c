#!/usr/bin/env python3
"""Checks an ONNX model written by `kiln export --onnx` with the `onnx` package (Debian: python3-onnx).

    check_onnx.py MODEL.onnx [--classes 10] [--input input.bin --logits logits.bin]

1. onnx.checker.check_model(full_check=True): the file is a valid opset-17 model.
2. onnx.shape_inference, the declared output shapes removed: 'logits' comes out as [batch, classes].
3. The metadata holds the architecture, the class names and the preprocessing, as JSON.
4. With --input and --logits (raw little-endian float32, the input [N, C, H, W] and kiln's own logits
   [N, classes] for it): runs the graph with the small numpy interpreter below, written only for the ops
   kiln emits, in float64, and requires its logits to match kiln's within 1e-4 of their largest magnitude.
   (Debian has no ONNX runtime, hence the interpreter.)

Prints one line per check; exits 1 with the reason on the first failure, 2 when onnx or numpy is missing.
"""
import argparse
import json
import math
import sys

try:
    import numpy as np
    import onnx
    from onnx import numpy_helper, shape_inference
except ImportError as error:  # the caller skips the check
    print(f"skip: {error}")
    sys.exit(2)


def fail(message):
    print(f"FAIL: {message}")
    sys.exit(1)


def attributes(node):
    return {attribute.name: onnx.helper.get_attribute_value(attribute) for attribute in node.attribute}


# ---- the reference interpreter: one function per op, NCHW, float64 ---------------------------------------

def conv(x, w, b=None, kernel_shape=None, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group=1):
    n, c, _, _ = x.shape
    out_channels, group_channels, kh, kw = w.shape
    x = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    out_h = (x.shape[2] - dilations[0] * (kh - 1) - 1) // strides[0] + 1
    out_w = (x.shape[3] - dilations[1] * (kw - 1) - 1) // strides[1] + 1
    xg = x.reshape(n, group, c // group, x.shape[2], x.shape[3])
    wg = w.reshape(group, out_channels // group, group_channels, kh, kw)
    y = np.zeros((n, group, out_channels // group, out_h, out_w))
    for i in range(kh):  # one kernel tap at a time: a batched matrix product over channels
        for j in range(kw):
            top, left = i * dilations[0], j * dilations[1]
            window = xg[:, :, :, top:top + strides[0] * (out_h - 1) + 1:strides[0],
                        left:left + strides[1] * (out_w - 1) + 1:strides[1]]
            y += np.einsum("ngchw,goc->ngohw", window, wg[:, :, :, i, j])
    y = y.reshape(n, out_channels, out_h, out_w)
    return y if b is None else y + b.reshape(1, -1, 1, 1)


def pool(x, kind, kernel_shape, strides=None, pads=(0, 0, 0, 0), ceil_mode=0, count_include_pad=0):
    strides = strides or (1, 1)
    kh, kw = kernel_shape
    rounding = math.ceil if ceil_mode else math.floor
    out_h = int(rounding((x.shape[2] + pads[0] + pads[2] - kh) / strides[0])) + 1
    out_w = int(rounding((x.shape[3] + pads[1] + pads[3] - kw) / strides[1])) + 1
    # Pad the bottom and right by the explicit pads, or more where ceil_mode's last window hangs over;
    # padded cells are -inf for max and left out of an average's count.
    bottom = max(pads[2], (out_h - 1) * strides[0] + kh - x.shape[2] - pads[0])
    right = max(pads[3], (out_w - 1) * strides[1] + kw - x.shape[3] - pads[1])
    widths = ((0, 0), (0, 0), (pads[0], bottom), (pads[1], right))
    fill = -np.inf if kind == "max" else 0.0
    padded = np.pad(x, widths, constant_values=fill)
    inside = np.pad(np.ones(x.shape[2:]), widths[2:])  # 1 on a real pixel
    # 1 on a real pixel or an explicit pad (what count_include_pad counts), 0 in the overhang.
    within_pads = np.pad(np.ones((x.shape[2] + pads[0] + pads[2], x.shape[3] + pads[1] + pads[3])),
                         ((0, bottom - pads[2]), (0, right - pads[3])))
    result = np.full((x.shape[0], x.shape[1], out_h, out_w), fill)
    counts = np.zeros((out_h, out_w))
    for i in range(kh):
        for j in range(kw):
            rows = slice(i, i + strides[0] * (out_h - 1) + 1, strides[0])
            cols = slice(j, j + strides[1] * (out_w - 1) + 1, strides[1])
            window = padded[:, :, rows, cols]
            if kind == "max":
                result = np.maximum(result, window)
            else:
                result = result + window
                counts += (within_pads if count_include_pad else inside)[rows, cols]
    return result if kind == "max" else result / counts


def run_node(node, values):
    inputs = [values[name] for name in node.input if name]
    a = attributes(node)
    op = node.op_type
    if op == "Conv":
        return conv(*inputs, **a)
    if op == "BatchNormalization":
        x, scale, bias, mean, var = inputs
        shape = (1, -1, 1, 1)
        eps = a.get("epsilon", 1e-5)
        return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * scale.reshape(shape) + bias.reshape(shape)
    if op == "Relu":
        return np.maximum(inputs[0], 0.0)
    if op == "Clip":
        return np.clip(inputs[0], inputs[1], inputs[2])
    if op == "LeakyRelu":
        return np.where(inputs[0] > 0, inputs[0], a.get("alpha", 0.01) * inputs[0])
    if op == "Sigmoid":
        return 1.0 / (1.0 + np.exp(-inputs[0]))
    if op == "Tanh":
        return np.tanh(inputs[0])
    if op == "HardSigmoid":
        return np.clip(a.get("alpha", 0.2) * inputs[0] + a.get("beta", 0.5), 0.0, 1.0)
    if op == "HardSwish":
        return inputs[0] * np.clip(inputs[0] / 6.0 + 0.5, 0.0, 1.0)
    if op == "Erf":
        return np.vectorize(math.erf)(inputs[0])
    if op in ("Add", "Mul", "Div"):
        return {"Add": np.add, "Mul": np.multiply, "Div": np.divide}[op](inputs[0], inputs[1])
    if op == "MaxPool":
        return pool(inputs[0], "max", **a)
    if op == "AveragePool":
        return pool(inputs[0], "average", **a)
    if op == "GlobalAveragePool":
        return inputs[0].mean(axis=(2, 3), keepdims=True)
    if op == "Flatten":
        axis = a.get("axis", 1)
        return inputs[0].reshape(int(np.prod(inputs[0].shape[:axis])), -1)
    if op == "Gemm":
        a_matrix, b_matrix = inputs[0], inputs[1]
        if a.get("transA", 0):
            a_matrix = a_matrix.T
        if a.get("transB", 0):
            b_matrix = b_matrix.T
        y = a.get("alpha", 1.0) * a_matrix @ b_matrix
        return y + a.get("beta", 1.0) * inputs[2] if len(inputs) > 2 else y
    if op == "Slice":
        x, starts, ends = inputs[0], inputs[1], inputs[2]
        axes = inputs[3] if len(inputs) > 3 else range(len(starts))
        steps = inputs[4] if len(inputs) > 4 else [1] * len(starts)
        index = [slice(None)] * x.ndim
        for start, end, axis, step in zip(starts, ends, axes, steps):
            index[int(axis)] = slice(int(start), int(min(end, x.shape[int(axis)])), int(step))
        return x[tuple(index)]
    if op == "Pad":
        x, pads = inputs[0], [int(p) for p in inputs[1]]
        if a.get("mode", b"constant") not in (b"constant", "constant"):
            fail(f"Pad mode {a['mode']} is not interpreted")
        value = float(inputs[2]) if len(inputs) > 2 else 0.0
        return np.pad(x, [(pads[i], pads[i + x.ndim]) for i in range(x.ndim)], constant_values=value)
    if op == "Softmax":
        x = inputs[0]
        shifted = np.exp(x - x.max(axis=a.get("axis", -1), keepdims=True))
        return shifted / shifted.sum(axis=a.get("axis", -1), keepdims=True)
    if op == "Identity":
        return inputs[0]
    fail(f"the reference interpreter has no {op} (node {node.name})")


def run_graph(graph, input_tensor):
    values = {tensor.name: numpy_helper.to_array(tensor).astype(np.float64)
              if tensor.data_type == onnx.TensorProto.FLOAT else numpy_helper.to_array(tensor)
              for tensor in graph.initializer}
    values[graph.input[0].name] = input_tensor.astype(np.float64)
    for node in graph.node:  # a valid graph lists its nodes in topological order
        values[node.output[0]] = run_node(node, values)
    return {output.name: values[output.name] for output in graph.output}


# ---- the checks ------------------------------------------------------------------------------------------

def dims(value_info):
    return [d.dim_param if d.HasField("dim_param") else d.dim_value
            for d in value_info.type.tensor_type.shape.dim]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--classes", type=int, help="expected; default: the number the metadata lists")
    parser.add_argument("--input")
    parser.add_argument("--logits")
    args = parser.parse_args()

    model = onnx.load(args.model)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as error:  # noqa: BLE001 (the checker raises several types)
        fail(f"onnx.checker: {error}")
    opset = [entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")]
    print(f"onnx.checker.check_model(full_check=True): ok (IR version {model.ir_version}, opset {opset[0]}, "
          f"{len(model.graph.node)} nodes, {len(model.graph.initializer)} initializers)")

    metadata = {entry.key: entry.value for entry in model.metadata_props}
    if args.classes is None:
        args.classes = len(json.loads(metadata.get("classes", "[]")))
    # Forget the declared output shapes, so that what is read back is what inference derived from the graph.
    undeclared = onnx.ModelProto()
    undeclared.CopyFrom(model)
    for output in undeclared.graph.output:
        output.type.tensor_type.ClearField("shape")
    inferred = shape_inference.infer_shapes(undeclared, strict_mode=True)
    outputs = {output.name: dims(output) for output in inferred.graph.output}
    if outputs.get("logits") != ["batch", args.classes]:
        fail(f"logits have shape {outputs.get('logits')}, expected ['batch', {args.classes}]")
    print(f"shape inference: logits {outputs['logits']}" +
          (f", probabilities {outputs['probabilities']}" if "probabilities" in outputs else ""))

    for key in ("architecture", "classes", "preprocessing"):
        if key not in metadata:
            fail(f"metadata has no '{key}'")
    classes = json.loads(metadata["classes"])
    preprocessing = json.loads(metadata["preprocessing"])
    if len(classes) != args.classes:
        fail(f"metadata lists {len(classes)} classes, expected {args.classes}")
    print(f"metadata: architecture {json.loads(metadata['architecture'])['name']}, {len(classes)} classes, "
          f"preprocessing {preprocessing['height']}x{preprocessing['width']} {preprocessing['resize']}")

    if args.input and args.logits:
        shape = [d for d in dims(model.graph.input[0])[1:]]
        input_tensor = np.fromfile(args.input, dtype="<f4").reshape([-1] + shape)
        expected = np.fromfile(args.logits, dtype="<f4").reshape(input_tensor.shape[0], args.classes).astype(np.float64)
        results = run_graph(model.graph, input_tensor)
        scale = max(np.abs(expected).max(), 1e-12)
        difference = np.abs(results["logits"] - expected).max() / scale
        if not difference <= 1e-4:
            fail(f"logits differ from kiln's by {difference:.3g} of their largest magnitude (limit 1e-4)")
        print(f"numpy reference run on {input_tensor.shape[0]} images: logits match kiln's "
              f"(largest difference {difference:.2g} of the largest logit)")
        if "probabilities" in results and not np.allclose(results["probabilities"].sum(axis=1), 1.0):
            fail("probabilities do not sum to 1")


if __name__ == "__main__":
    main()
