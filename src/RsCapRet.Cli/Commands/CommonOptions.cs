using System.CommandLine;
using RsCapRet.Core;
using RsCapRet.Pipeline;

namespace RsCapRet.Cli.Commands;

/// <summary>Options several commands share, and how their defaults resolve.</summary>
public static class CommonOptions
{
    public static Option<string?> Model() => new("--model")
    {
        Description = "RS-CapRet model folder (rscapret.json + backbones + heads + tokenizer); default $RSCAPRET_MODEL, else models/default",
    };

    public static Option<string> Device() => new("--device")
    {
        Description = "auto (CUDA when available), cpu, or cuda[:N]",
        DefaultValueFactory = _ => "auto",
    };

    public static Option<bool> Bf16() => new("--bf16") { Description = "Run the model in bfloat16 (GPU inference)" };

    public static string ResolveModel(string? value)
    {
        if (!string.IsNullOrWhiteSpace(value)) return Path.GetFullPath(value);
        var env = Environment.GetEnvironmentVariable("RSCAPRET_MODEL");
        if (!string.IsNullOrWhiteSpace(env)) return Path.GetFullPath(env);
        var root = RepositoryPaths.TryFindRoot() ?? AppContext.BaseDirectory;
        return Path.Combine(root, "models", "default");
    }

    public static RsCapRetTileEncoder LoadEncoder(string? model, string device, bool bf16) => RsCapRetTileEncoder.Load(RequireModel(model), device, bf16);

    /// <summary>The resolved model folder, or a clear error when it is not one.</summary>
    public static string RequireModel(string? model)
    {
        var dir = ResolveModel(model);
        if (!File.Exists(Path.Combine(dir, RsCapRet.Model.RsCapRetConfig.FileName)))
            throw new DirectoryNotFoundException($"{dir}: not an RS-CapRet model folder (no {RsCapRet.Model.RsCapRetConfig.FileName}); pass --model or set RSCAPRET_MODEL");
        return dir;
    }
}
