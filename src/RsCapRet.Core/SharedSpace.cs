namespace RsCapRet.Core;

/// <summary>
/// The shared image–text space: a tile's image vector and a text's [RET] vector have <see cref="Dimensions"/>
/// components. The catalogue's columns are vector(256) (migrations/0002, checked by a Storage test), so a model with
/// another shared dimension cannot be registered.
/// </summary>
public static class SharedSpace
{
    /// <summary>Components of a vector in the shared space.</summary>
    public const int Dimensions = 256;
}
