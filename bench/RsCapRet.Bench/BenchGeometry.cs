using NetTopologySuite.Geometries;

namespace RsCapRet.Bench;

/// <summary>Footprints of the benchmarks' synthetic catalogues.</summary>
public static class BenchGeometry
{
    private static readonly GeometryFactory Wgs84 = new(new PrecisionModel(), 4326);

    /// <summary>An axis-aligned box, in lon/lat unless <paramref name="factory"/> names another CRS.</summary>
    public static Polygon Box(double minX, double minY, double maxX, double maxY, GeometryFactory? factory = null) =>
        (factory ?? Wgs84).CreatePolygon([new(minX, minY), new(maxX, minY), new(maxX, maxY), new(minX, maxY), new(minX, minY)]);
}
