using Google.Protobuf;
using Onnx;
using RsCapRet.Model.Checkpoints;
using static TorchSharp.torch;

namespace RsCapRet.Model.Import;

/// <summary>What the ONNX importers share: parsing a model with clear errors, float initializers, and filling a module.</summary>
internal static class OnnxReading
{
    /// <summary>Parses an ONNX model; <paramref name="what"/> names it in errors (a path, or an assembly resource).</summary>
    public static ModelProto Parse(Stream stream, string what)
    {
        ModelProto model;
        try { model = ModelProto.Parser.ParseFrom(stream); }
        catch (InvalidProtocolBufferException e) { throw new CheckpointException(what, $"is not a readable ONNX model (truncated or not protobuf): {e.Message}", e); }
        if (model.Graph is null || model.Graph.Node.Count == 0) throw new CheckpointException(what, "is not an ONNX model: it has no graph nodes");
        return model;
    }

    /// <summary>A float initializer's values, checked against its shape.</summary>
    public static float[] Floats(string what, TensorProto t)
    {
        if (t.DataType != (int)TensorProto.Types.DataType.Float)
            throw new CheckpointException(what, $"initializer '{t.Name}' has ONNX data type {t.DataType}, expected float");
        var count = t.Dims.Aggregate(1L, (a, b) => a * b);
        float[] data;
        if (t.FloatData.Count > 0) data = t.FloatData.ToArray();
        else if (!t.RawData.IsEmpty)
        {
            data = new float[t.RawData.Length / 4];
            Buffer.BlockCopy(t.RawData.ToByteArray(), 0, data, 0, data.Length * 4);
        }
        else data = [];
        if (data.Length != count)
            throw new CheckpointException(what, $"initializer '{t.Name}' holds {data.Length} values for shape [{string.Join(",", t.Dims)}] ({count}): truncated file?");
        return data;
    }

    /// <summary>Copies the weights found in the graph into every tensor of a module's state, by name and shape.</summary>
    public static void CopyInto(IEnumerable<(string Name, Tensor Tensor)> state, IReadOnlyDictionary<string, (float[] Data, long[] Shape)> tensors, string what)
    {
        using var _ = no_grad();
        foreach (var (name, target) in state)
        {
            if (!tensors.TryGetValue(name, out var t))
                throw new CheckpointException(what, $"no weights were found for '{name}' while following the graph");
            if (!t.Shape.SequenceEqual(target.shape))
                throw new CheckpointException(what, $"'{name}' has shape [{string.Join(",", t.Shape)}] in the graph, the module expects [{string.Join(",", target.shape)}]");
            using var src = tensor(t.Data, t.Shape);
            target.copy_(src);
        }
    }
}
