namespace RsCapRet.Raster;

/// <summary>A raster that cannot be used, with the file and the reason.</summary>
public class RasterException(string path, string problem, Exception? inner = null)
    : Exception($"{path}: {problem}", inner)
{
    public string Path { get; } = path;
    public string Problem { get; } = problem;
}
