using RsCapRet.Core;
using static TorchSharp.torch;

namespace RsCapRet.Model.Tests;

/// <summary>Fixture folders: every sub-folder of the configured directory is one test case, named after it.</summary>
public static class Fixtures
{
    public static string ParityRoot => Root("RSCAPRET_PARITY_FIXTURES", "parity");
    public static string ClipParityRoot => Root("RSCAPRET_CLIP_PARITY_FIXTURES", "parity-clip");

    private static string Root(string variable, string folder)
    {
        var env = Environment.GetEnvironmentVariable(variable);
        return !string.IsNullOrWhiteSpace(env) ? Path.GetFullPath(env) : Path.Combine(RepositoryPaths.SharedDirectory(), "fixtures", folder);
    }

    /// <summary>One case per sub-folder of <paramref name="root"/> that holds <paramref name="marker"/>.</summary>
    public static TheoryData<string> CasesIn(string root, string marker = "expected.safetensors")
    {
        var data = new TheoryData<string>();
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"Parity fixture folder '{root}' does not exist.");
        foreach (var dir in Directory.EnumerateDirectories(root).Order(StringComparer.Ordinal))
            if (File.Exists(Path.Combine(dir, marker))) data.Add(Path.GetFileName(dir));
        if (data.Count == 0) throw new InvalidOperationException($"No fixture folders (with {marker}) under '{root}'.");
        return data;
    }

    /// <summary>Max |a-b| over all elements, after checking shapes agree.</summary>
    public static double MaxAbsDiff(Tensor actual, Tensor expected, string what)
    {
        Assert.True(actual.shape.SequenceEqual(expected.shape),
            $"{what}: shape [{string.Join(",", actual.shape)}] differs from expected [{string.Join(",", expected.shape)}]");
        using var d = (actual.to_type(ScalarType.Float32).cpu() - expected.to_type(ScalarType.Float32).cpu()).abs().max();
        return d.item<float>();
    }

    public static void AssertClose(Tensor actual, Tensor expected, string what, double tolerance = 1e-4)
    {
        var diff = MaxAbsDiff(actual, expected, what);
        Assert.True(diff <= tolerance, $"{what}: max |diff| {diff:E3} exceeds {tolerance:E1}");
    }
}
